/*
 * hang: a deliberately broken FMU. Its output y follows time until the communication point reaches 0.1 s,
 * then fmi2DoStep never returns.
 *
 * Why: the pipeline must enforce wall-clock timeouts on models that stop making progress. The loop increments
 * a volatile counter so the compiler can neither remove it nor treat it as undefined behaviour.
 */
#include "fmu_common.h"

enum { VR_Y };

static const FmuRealVariable reals[] = {
    [VR_Y] = {"y", FMU_OUTPUT, 0.0},
};

static volatile unsigned long spin_counter = 0;

static fmi2Status do_step(FmuInstance *inst, fmi2Real t, fmi2Real h) {
    if (t >= 0.1 - 1e-9) { /* tolerance: a communication point meant as 0.1 may be 0.0999999... */
        for (;;) {
            spin_counter++;
        }
    }
    inst->reals[VR_Y] = t + h;
    return fmi2OK;
}

const FmuModel fmu_model = {
    .reals = reals,
    .n_reals = sizeof reals / sizeof reals[0],
    .do_step = do_step,
};
