/*
 * source_only_fmi2: FMI 2.0 Co-Simulation shipped as C sources only (no binaries/), so importers must
 * compile it themselves (e.g. fmpy's build_platform_binary). The model is a ramp y = offset + slope*t with
 * slope = 2 and offset = 1, computed exactly from the communication time. No libm, so a generic build that
 * does not link -lm still works.
 */
#include <stddef.h>

#include "fmi2_core.h"

typedef struct {
    fmi2Real slope, offset, y;
} ModelData;

enum { VR_SLOPE = 0, VR_OFFSET = 1, VR_Y = 2 };

static const Fmi2Variable variables[] = {
    {VR_SLOPE, V_REAL, C_PARAMETER, offsetof(ModelData, slope)},
    {VR_OFFSET, V_REAL, C_PARAMETER, offsetof(ModelData, offset)},
    {VR_Y, V_REAL, C_OUTPUT, offsetof(ModelData, y)},
};

static void set_start_values(void *data) {
    ModelData *d = (ModelData *)data;

    d->slope = 2.0;
    d->offset = 1.0;
}

static void update(Fmi2Instance *inst) {
    ModelData *d = (ModelData *)inst->data;

    d->y = d->offset + d->slope * inst->time;
}

const Fmi2Model fmi2_model = {
    .interfaces = INTERFACE_CS,
    .variables = variables,
    .n_variables = sizeof variables / sizeof variables[0],
    .data_size = sizeof(ModelData),
    .set_start_values = set_start_values,
    .update = update,
};
