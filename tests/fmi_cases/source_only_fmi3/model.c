/*
 * source_only_fmi3: FMI 3.0 Co-Simulation shipped as C sources only (sources/buildDescription.xml, no
 * binaries/), so importers must compile it themselves (e.g. fmpy's build_platform_binary). The model is a
 * ramp y = offset + slope*t with slope = 2 and offset = 1, computed exactly from the communication time.
 * No libm, so a generic build that does not link -lm still works.
 */
#include <stddef.h>

#include "fmi3_core.h"

typedef struct {
    fmi3Float64 time, slope, offset, y;
} ModelData;

enum { VR_TIME = 0, VR_SLOPE = 1, VR_OFFSET = 2, VR_Y = 3 };

static const Fmi3Variable variables[] = {
    {VR_TIME, V_FLOAT64, C_INDEPENDENT, offsetof(ModelData, time), 1, NO_DIM},
    {VR_SLOPE, V_FLOAT64, C_PARAMETER, offsetof(ModelData, slope), 1, NO_DIM},
    {VR_OFFSET, V_FLOAT64, C_PARAMETER, offsetof(ModelData, offset), 1, NO_DIM},
    {VR_Y, V_FLOAT64, C_OUTPUT, offsetof(ModelData, y), 1, NO_DIM},
};

static void set_start_values(void *data) {
    ModelData *d = (ModelData *)data;

    d->slope = 2.0;
    d->offset = 1.0;
}

static void update(Fmi3Instance *inst) {
    ModelData *d = (ModelData *)inst->data;

    d->time = inst->time;
    d->y = d->offset + d->slope * inst->time;
}

const Fmi3Model fmi3_model = {
    .interfaces = INTERFACE_CS,
    .variables = variables,
    .n_variables = sizeof variables / sizeof variables[0],
    .data_size = sizeof(ModelData),
    .set_start_values = set_start_values,
    .update = update,
};
