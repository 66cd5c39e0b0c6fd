/*
 * crash: a deliberately broken FMU. Its output y follows time until the communication point reaches 0.1 s,
 * then fmi2DoStep writes through a NULL pointer and the process dies with SIGSEGV.
 *
 * Why: the pipeline must survive a model that kills its host process (it runs FMUs in a child process and
 * reports the signal). The pointer is read through a volatile object so the compiler cannot prove it is NULL
 * and replace the store with a trap instruction (SIGILL) or drop it.
 */
#include <stddef.h>

#include "fmu_common.h"

enum { VR_Y };

static const FmuRealVariable reals[] = {
    [VR_Y] = {"y", FMU_OUTPUT, 0.0},
};

static int *volatile null_pointer = NULL;

static fmi2Status do_step(FmuInstance *inst, fmi2Real t, fmi2Real h) {
    if (t >= 0.1 - 1e-9) { /* tolerance: a communication point meant as 0.1 may be 0.0999999... */
        *null_pointer = 42;
    }
    inst->reals[VR_Y] = t + h;
    return fmi2OK;
}

const FmuModel fmu_model = {
    .reals = reals,
    .n_reals = sizeof reals / sizeof reals[0],
    .do_step = do_step,
};
