/*
 * cs_and_me_fmi2: FMI 2.0 FMU offering BOTH Model Exchange and Co-Simulation, so importers must pick an
 * interface. Same dynamics as me_only_fmi2: der(x) = -k*x, x(0) = 1, k = 1, y = x. In Co-Simulation doStep
 * uses the exact update x(t+h) = x(t)*exp(-k*h), so the CS result is exp(-k*t) to rounding; in Model
 * Exchange the importer's solver integrates der(x).
 */
#include <math.h>
#include <stddef.h>

#include "fmi2_core.h"

typedef struct {
    fmi2Real x, der_x, k, y;
} ModelData;

enum { VR_X = 0, VR_DER_X = 1, VR_K = 2, VR_Y = 3 };

static const Fmi2Variable variables[] = {
    {VR_X, V_REAL, C_LOCAL, offsetof(ModelData, x)},
    {VR_DER_X, V_REAL, C_LOCAL, offsetof(ModelData, der_x)},
    {VR_K, V_REAL, C_PARAMETER, offsetof(ModelData, k)},
    {VR_Y, V_REAL, C_OUTPUT, offsetof(ModelData, y)},
};

static const fmi2ValueReference state_vrs[] = {VR_X};
static const fmi2ValueReference derivative_vrs[] = {VR_DER_X};

static void set_start_values(void *data) {
    ModelData *d = (ModelData *)data;

    d->x = 1.0;
    d->k = 1.0;
}

static void update(Fmi2Instance *inst) {
    ModelData *d = (ModelData *)inst->data;

    d->der_x = -d->k * d->x;
    d->y = d->x;
}

static void do_step(Fmi2Instance *inst, fmi2Real t, fmi2Real h) {
    ModelData *d = (ModelData *)inst->data;

    (void)t;
    d->x *= exp(-d->k * h);
}

const Fmi2Model fmi2_model = {
    .interfaces = INTERFACE_ME | INTERFACE_CS,
    .variables = variables,
    .n_variables = sizeof variables / sizeof variables[0],
    .data_size = sizeof(ModelData),
    .set_start_values = set_start_values,
    .update = update,
    .do_step = do_step,
    .n_states = 1,
    .state_vrs = state_vrs,
    .derivative_vrs = derivative_vrs,
};
