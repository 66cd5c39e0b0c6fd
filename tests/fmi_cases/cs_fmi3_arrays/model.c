/*
 * cs_fmi3_arrays: FMI 3.0 Co-Simulation with array outputs, to check how an importer shapes, flattens and
 * stores arrays. Closed-form values at communication time t:
 *   y   Float64[3]    = [t, 2t, 3t]
 *   m   Float64[2][2] = [[1 + t, 2 + t], [3 + t, 4 + t]]   (row-major, as FMI 3.0 serializes arrays)
 *   v   Float64[n]    = [10 + t, 20 + t, ...]             (n: structural parameter, UInt64, start 3, max 8)
 *   iv  Int32[2]      = [steps, -steps]                   (steps = completed doStep calls)
 */
#include <stddef.h>

#include "fmi3_core.h"

#define V_MAX 8

typedef struct {
    fmi3Float64 time;
    fmi3UInt64 n;
    fmi3Float64 y[3];
    fmi3Float64 m[2][2];
    fmi3Float64 v[V_MAX];
    fmi3Int32 iv[2];
    fmi3Int32 steps;
} ModelData;

enum { VR_TIME = 0, VR_N = 1, VR_Y = 2, VR_M = 3, VR_V = 4, VR_IV = 5 };

static const Fmi3Variable variables[] = {
    {VR_TIME, V_FLOAT64, C_INDEPENDENT, offsetof(ModelData, time), 1, NO_DIM},
    {VR_N, V_UINT64, C_STRUCTURAL_PARAMETER, offsetof(ModelData, n), 1, NO_DIM},
    {VR_Y, V_FLOAT64, C_OUTPUT, offsetof(ModelData, y), 3, NO_DIM},
    {VR_M, V_FLOAT64, C_OUTPUT, offsetof(ModelData, m), 4, NO_DIM},
    {VR_V, V_FLOAT64, C_OUTPUT, offsetof(ModelData, v), V_MAX, VR_N},
    {VR_IV, V_INT32, C_OUTPUT, offsetof(ModelData, iv), 2, NO_DIM},
};

static void set_start_values(void *data) { ((ModelData *)data)->n = 3; }

static void update(Fmi3Instance *inst) {
    ModelData *d = (ModelData *)inst->data;
    const fmi3Float64 t = inst->time;

    d->time = t;
    for (int i = 0; i < 3; ++i) {
        d->y[i] = (i + 1) * t;
    }
    for (int i = 0; i < 4; ++i) {
        d->m[i / 2][i % 2] = (i + 1) + t;
    }
    for (int i = 0; i < V_MAX; ++i) {
        d->v[i] = 10.0 * (i + 1) + t;
    }
    d->iv[0] = d->steps;
    d->iv[1] = -d->steps;
}

static void do_step(Fmi3Instance *inst, fmi3Float64 t, fmi3Float64 h) {
    (void)t;
    (void)h;
    ((ModelData *)inst->data)->steps += 1;
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
