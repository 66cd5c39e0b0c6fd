/*
 * multi_output: one output of each FMI scalar type, all analytic in time, so a test can check every
 * type's getter and the result recording end to end.
 *
 *   ramp     (Real)    = slope * t
 *   wave     (Real)    = sin(omega * t)
 *   steps    (Integer) = number of fmi2DoStep calls so far
 *   positive (Boolean) = wave > 0
 */
#include <math.h>

#include "fmu_common.h"

/* Indices into each type's table. Value references (fmu_common.h): Reals 0-3, steps 4, positive 5. */
enum { VR_SLOPE, VR_OMEGA, VR_RAMP, VR_WAVE };
enum { I_STEPS };
enum { B_POSITIVE };

static const FmuRealVariable reals[] = {
    [VR_SLOPE] = {"slope", FMU_PARAMETER, 1.5},
    [VR_OMEGA] = {"omega", FMU_PARAMETER, 2.0},
    [VR_RAMP] = {"ramp", FMU_OUTPUT, 0.0},
    [VR_WAVE] = {"wave", FMU_OUTPUT, 0.0},
};

static const FmuIntegerVariable integers[] = {
    [I_STEPS] = {"steps", FMU_OUTPUT, 0},
};

static const FmuBooleanVariable booleans[] = {
    [B_POSITIVE] = {"positive", FMU_OUTPUT, fmi2False},
};

static void calculate(FmuInstance *inst, fmi2Real t) {
    inst->reals[VR_RAMP] = inst->reals[VR_SLOPE] * t;
    inst->reals[VR_WAVE] = sin(inst->reals[VR_OMEGA] * t);
    inst->booleans[B_POSITIVE] = inst->reals[VR_WAVE] > 0.0 ? fmi2True : fmi2False;
}

static fmi2Status initialize(FmuInstance *inst) {
    inst->integers[I_STEPS] = 0;
    calculate(inst, inst->time);
    return fmi2OK;
}

static fmi2Status do_step(FmuInstance *inst, fmi2Real t, fmi2Real h) {
    inst->integers[I_STEPS] += 1;
    calculate(inst, t + h);
    return fmi2OK;
}

const FmuModel fmu_model = {
    .reals = reals,
    .n_reals = sizeof reals / sizeof reals[0],
    .integers = integers,
    .n_integers = sizeof integers / sizeof integers[0],
    .booleans = booleans,
    .n_booleans = sizeof booleans / sizeof booleans[0],
    .initialize = initialize,
    .do_step = do_step,
};
