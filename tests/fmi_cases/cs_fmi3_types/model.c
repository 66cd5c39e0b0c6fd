/*
 * cs_fmi3_types: FMI 3.0 Co-Simulation with one output of every FMI 3.0 variable type, to check how an
 * importer samples, converts and stores each. Values are closed-form functions of the communication time t:
 *   f32   Float32      = 0.5 + t (computed in float)       f64  Float64 = 2*t
 *   i8    Int8         = -128                               u8   UInt8   = 255
 *   i16   Int16        = -32768                             u16  UInt16  = 65535
 *   i32   Int32        = number of doStep calls completed   u32  UInt32  = 4294967295
 *   i64   Int64        = 9007199254740993 (2^53 + 1, not exactly representable as a double)
 *   i64n  Int64        = -9223372036854775807
 *   u64   UInt64       = 18446744073709551615 (2^64 - 1)    u64b UInt64  = 9007199254740993
 *   flag  Boolean      = t >= 0.5
 *   text  String       = "hello" while t < 0.5, then "world"
 *   blob  Binary       = DE AD BE EF while t < 0.5, then 00 FF
 *   level Enumeration  = Low (1) while t < 0.5, then High (3) (type Level: Low=1, Medium=2, High=3)
 *   tick  Clock        = triggered output clock that never ticks (always inactive)
 *   seq   UInt8[n]     = [10, 20, ...] where n is the structural parameter (UInt64, start 2, at most 8)
 */
#include <stddef.h>

#include "fmi3_core.h"

#define SEQ_MAX 8

typedef struct {
    fmi3Float64 time;
    fmi3UInt64 n;
    fmi3Float32 f32;
    fmi3Float64 f64;
    fmi3Int8 i8;
    fmi3UInt8 u8;
    fmi3Int16 i16;
    fmi3UInt16 u16;
    fmi3Int32 i32;
    fmi3UInt32 u32;
    fmi3Int64 i64, i64n, level;
    fmi3UInt64 u64, u64b;
    fmi3Boolean flag;
    fmi3String text;
    Fmi3BinaryValue blob;
    fmi3Clock tick;
    fmi3UInt8 seq[SEQ_MAX];
} ModelData;

enum {
    VR_TIME = 0, VR_N = 1, VR_F32 = 2, VR_F64 = 3, VR_I8 = 4, VR_U8 = 5, VR_I16 = 6, VR_U16 = 7, VR_I32 = 8,
    VR_U32 = 9, VR_I64 = 10, VR_I64N = 11, VR_U64 = 12, VR_U64B = 13, VR_FLAG = 14, VR_TEXT = 15, VR_BLOB = 16,
    VR_LEVEL = 17, VR_TICK = 18, VR_SEQ = 19
};
enum { LEVEL_LOW = 1, LEVEL_HIGH = 3 };

#define SCALAR(vr, type, causality, field) {vr, type, causality, offsetof(ModelData, field), 1, NO_DIM}

static const Fmi3Variable variables[] = {
    SCALAR(VR_TIME, V_FLOAT64, C_INDEPENDENT, time),
    SCALAR(VR_N, V_UINT64, C_STRUCTURAL_PARAMETER, n),
    SCALAR(VR_F32, V_FLOAT32, C_OUTPUT, f32),
    SCALAR(VR_F64, V_FLOAT64, C_OUTPUT, f64),
    SCALAR(VR_I8, V_INT8, C_OUTPUT, i8),
    SCALAR(VR_U8, V_UINT8, C_OUTPUT, u8),
    SCALAR(VR_I16, V_INT16, C_OUTPUT, i16),
    SCALAR(VR_U16, V_UINT16, C_OUTPUT, u16),
    SCALAR(VR_I32, V_INT32, C_OUTPUT, i32),
    SCALAR(VR_U32, V_UINT32, C_OUTPUT, u32),
    SCALAR(VR_I64, V_INT64, C_OUTPUT, i64),
    SCALAR(VR_I64N, V_INT64, C_OUTPUT, i64n),
    SCALAR(VR_U64, V_UINT64, C_OUTPUT, u64),
    SCALAR(VR_U64B, V_UINT64, C_OUTPUT, u64b),
    SCALAR(VR_FLAG, V_BOOLEAN, C_OUTPUT, flag),
    SCALAR(VR_TEXT, V_STRING, C_OUTPUT, text),
    SCALAR(VR_BLOB, V_BINARY, C_OUTPUT, blob),
    SCALAR(VR_LEVEL, V_INT64, C_OUTPUT, level), /* Enumerations are accessed with fmi3Get/SetInt64 */
    SCALAR(VR_TICK, V_CLOCK, C_OUTPUT, tick),
    {VR_SEQ, V_UINT8, C_OUTPUT, offsetof(ModelData, seq), SEQ_MAX, VR_N},
};

static const fmi3Byte blob_early[] = {0xDE, 0xAD, 0xBE, 0xEF};
static const fmi3Byte blob_late[] = {0x00, 0xFF};

static void set_start_values(void *data) {
    ModelData *d = (ModelData *)data;

    d->n = 2;
    d->text = "hello";
    d->blob.data = blob_early;
    d->blob.size = sizeof blob_early;
    d->level = LEVEL_LOW;
}

static void update(Fmi3Instance *inst) {
    ModelData *d = (ModelData *)inst->data;
    const int late = inst->time >= 0.5 - 1e-9; /* tolerate rounding of accumulated communication points */

    d->time = inst->time;
    d->f32 = 0.5f + (fmi3Float32)inst->time;
    d->f64 = 2.0 * inst->time;
    d->i8 = -128;
    d->u8 = 255;
    d->i16 = -32768;
    d->u16 = 65535;
    d->u32 = 4294967295u;
    d->i64 = 9007199254740993LL;
    d->i64n = -9223372036854775807LL;
    d->u64 = 18446744073709551615ULL;
    d->u64b = 9007199254740993ULL;
    d->flag = late ? fmi3True : fmi3False;
    d->text = late ? "world" : "hello";
    d->blob.data = late ? blob_late : blob_early;
    d->blob.size = late ? sizeof blob_late : sizeof blob_early;
    d->level = late ? LEVEL_HIGH : LEVEL_LOW;
    d->tick = fmi3ClockInactive;
    for (size_t i = 0; i < SEQ_MAX; ++i) {
        d->seq[i] = (fmi3UInt8)(10 * (i + 1));
    }
}

static void do_step(Fmi3Instance *inst, fmi3Float64 t, fmi3Float64 h) {
    (void)t;
    (void)h;
    ((ModelData *)inst->data)->i32 += 1;
}

const Fmi3Model fmi3_model = {
    .interfaces = INTERFACE_CS,
    .variables = variables,
    .n_variables = sizeof variables / sizeof variables[0],
    .data_size = sizeof(ModelData),
    .set_start_values = set_start_values,
    .update = update,
    .do_step = do_step,
};
