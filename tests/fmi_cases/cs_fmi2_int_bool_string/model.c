/*
 * cs_fmi2_int_bool_string: FMI 2.0 Co-Simulation with one output of every non-Real FMI 2.0 type, so
 * importers' handling of Integer, Boolean, String and Enumeration outputs can be checked in closed form:
 *   y      Real        = 2*t
 *   steps  Integer     = number of doStep calls completed so far
 *   late   Boolean     = t >= 0.5
 *   status String      = "ok"
 *   level  Enumeration = Low (1) while t < 0.5, High (3) from t >= 0.5 (type Level: Low=1, Medium=2, High=3)
 */
#include <stddef.h>

#include "fmi2_core.h"

typedef struct {
    fmi2Real y;
    fmi2Integer steps, level;
    fmi2Boolean late;
    fmi2String status;
} ModelData;

enum { VR_Y = 0, VR_STEPS = 100, VR_LEVEL = 101, VR_LATE = 200, VR_STATUS = 300 };
enum { LEVEL_LOW = 1, LEVEL_HIGH = 3 };

static const Fmi2Variable variables[] = {
    {VR_Y, V_REAL, C_OUTPUT, offsetof(ModelData, y)},
    {VR_STEPS, V_INTEGER, C_OUTPUT, offsetof(ModelData, steps)},
    {VR_LEVEL, V_INTEGER, C_OUTPUT, offsetof(ModelData, level)},
    {VR_LATE, V_BOOLEAN, C_OUTPUT, offsetof(ModelData, late)},
    {VR_STATUS, V_STRING, C_OUTPUT, offsetof(ModelData, status)},
};

static void set_start_values(void *data) {
    ModelData *d = (ModelData *)data;

    d->status = "ok";
    d->level = LEVEL_LOW;
}

static void update(Fmi2Instance *inst) {
    ModelData *d = (ModelData *)inst->data;
    const int late = inst->time >= 0.5 - 1e-9; /* tolerate rounding of accumulated communication points */

    d->y = 2.0 * inst->time;
    d->late = late ? fmi2True : fmi2False;
    d->level = late ? LEVEL_HIGH : LEVEL_LOW;
    d->status = "ok";
}

static void do_step(Fmi2Instance *inst, fmi2Real t, fmi2Real h) {
    (void)t;
    (void)h;
    ((ModelData *)inst->data)->steps += 1;
}

const Fmi2Model fmi2_model = {
    .interfaces = INTERFACE_CS,
    .variables = variables,
    .n_variables = sizeof variables / sizeof variables[0],
    .data_size = sizeof(ModelData),
    .set_start_values = set_start_values,
    .update = update,
    .do_step = do_step,
};
