/*
 * me_only_fmi3: FMI 3.0 Model Exchange only. Same dynamics as me_only_fmi2: one continuous state x with
 * der(x) = -k*x, x(0) = 1, k = 1, output y = x, so y(t) = exp(-k*t) up to the importer's integration error.
 */
#include <stddef.h>

#include "fmi3_core.h"

typedef struct {
    fmi3Float64 time, x, der_x, k, y;
} ModelData;

enum { VR_TIME = 0, VR_X = 1, VR_DER_X = 2, VR_K = 3, VR_Y = 4 };

static const Fmi3Variable variables[] = {
    {VR_TIME, V_FLOAT64, C_INDEPENDENT, offsetof(ModelData, time), 1, NO_DIM},
    {VR_X, V_FLOAT64, C_LOCAL, offsetof(ModelData, x), 1, NO_DIM},
    {VR_DER_X, V_FLOAT64, C_LOCAL, offsetof(ModelData, der_x), 1, NO_DIM},
    {VR_K, V_FLOAT64, C_PARAMETER, offsetof(ModelData, k), 1, NO_DIM},
    {VR_Y, V_FLOAT64, C_OUTPUT, offsetof(ModelData, y), 1, NO_DIM},
};

static const fmi3ValueReference state_vrs[] = {VR_X};
static const fmi3ValueReference derivative_vrs[] = {VR_DER_X};

static void set_start_values(void *data) {
    ModelData *d = (ModelData *)data;

    d->x = 1.0;
    d->k = 1.0;
}

static void update(Fmi3Instance *inst) {
    ModelData *d = (ModelData *)inst->data;

    d->time = inst->time;
    d->der_x = -d->k * d->x;
    d->y = d->x;
}

const Fmi3Model fmi3_model = {
    .interfaces = INTERFACE_ME,
    .variables = variables,
    .n_variables = sizeof variables / sizeof variables[0],
    .data_size = sizeof(ModelData),
    .set_start_values = set_start_values,
    .update = update,
    .n_states = 1,
    .state_vrs = state_vrs,
    .derivative_vrs = derivative_vrs,
};
