/*
 * first_order_lag: y' = (k*u - y) / tau, y(0) = 0.
 *
 * Why an exact exponential update: with u held constant over a communication step (zero-order hold, which is
 * what a Co-Simulation master does) the ODE has the closed form y(t+h) = k*u + (y(t) - k*u) * exp(-h/tau).
 * The sample therefore has no integration error, so tests can compare against k*u*(1 - exp(-t/tau)) to 1e-9.
 */
#include <math.h>

#include "fmu_common.h"

enum { VR_U, VR_K, VR_TAU, VR_Y };

static const FmuRealVariable reals[] = {
    [VR_U] = {"u", FMU_INPUT, 1.0},
    [VR_K] = {"k", FMU_PARAMETER, 2.0},
    [VR_TAU] = {"tau", FMU_PARAMETER, 0.5},
    [VR_Y] = {"y", FMU_OUTPUT, 0.0},
};

static fmi2Status initialize(FmuInstance *inst) {
    if (!(inst->reals[VR_TAU] > 0.0)) { /* also rejects NaN */
        fmu_log(inst, fmi2Error, "logStatusError", "tau must be > 0, got %g", inst->reals[VR_TAU]);
        return fmi2Error;
    }
    inst->reals[VR_Y] = 0.0;
    return fmi2OK;
}

static fmi2Status do_step(FmuInstance *inst, fmi2Real t, fmi2Real h) {
    const fmi2Real target = inst->reals[VR_K] * inst->reals[VR_U];

    (void)t;
    inst->reals[VR_Y] = target + (inst->reals[VR_Y] - target) * exp(-h / inst->reals[VR_TAU]);
    return fmi2OK;
}

const FmuModel fmu_model = {
    .reals = reals,
    .n_reals = sizeof reals / sizeof reals[0],
    .initialize = initialize,
    .do_step = do_step,
};
