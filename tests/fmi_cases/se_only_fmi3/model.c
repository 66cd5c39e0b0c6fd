/*
 * se_only_fmi3: FMI 3.0 Scheduled Execution only (no Model Exchange, no Co-Simulation). Tests that an
 * importer recognises an interface it may not be able to run. One model partition, driven by the periodic
 * input clock `tick` (interval 0.1 s); each fmi3ActivateModelPartition(tick, t) increments the output
 * `count` and records t in `last_activation`.
 */
#include <stddef.h>

#include "fmi3_core.h"

typedef struct {
    fmi3Float64 time;
    fmi3Clock tick;
    fmi3Int32 count;
    fmi3Float64 last_activation;
} ModelData;

enum { VR_TIME = 0, VR_TICK = 1, VR_COUNT = 2, VR_LAST = 3 };

static const Fmi3Variable variables[] = {
    {VR_TIME, V_FLOAT64, C_INDEPENDENT, offsetof(ModelData, time), 1, NO_DIM},
    {VR_TICK, V_CLOCK, C_INPUT, offsetof(ModelData, tick), 1, NO_DIM},
    {VR_COUNT, V_INT32, C_OUTPUT, offsetof(ModelData, count), 1, NO_DIM},
    {VR_LAST, V_FLOAT64, C_OUTPUT, offsetof(ModelData, last_activation), 1, NO_DIM},
};

static void set_start_values(void *data) { (void)data; }

static void update(Fmi3Instance *inst) { ((ModelData *)inst->data)->time = inst->time; }

static void activate(Fmi3Instance *inst, fmi3ValueReference clock, fmi3Float64 t) {
    ModelData *d = (ModelData *)inst->data;

    if (clock == VR_TICK) {
        d->count += 1;
        d->last_activation = t;
    }
}

const Fmi3Model fmi3_model = {
    .interfaces = INTERFACE_SE,
    .variables = variables,
    .n_variables = sizeof variables / sizeof variables[0],
    .data_size = sizeof(ModelData),
    .set_start_values = set_start_values,
    .update = update,
    .activate = activate,
};
