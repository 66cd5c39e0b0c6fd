/*
 * Shared FMI 2.0 Co-Simulation boilerplate for the validibot sample FMUs.
 *
 * Why this exists: every sample model needs the full FMI 2.0 CS function set (fmpy resolves all of them
 * when it loads a binary), but the models themselves are a handful of lines each. fmu_common.c implements
 * every exported fmi2* function once; a model only supplies a table of variables and two hooks through the
 * `fmu_model` definition below.
 *
 * Conventions a model must follow:
 *   - Value references are dense and unique across types (FMI 2.0 would allow per-type numbering, but
 *     importers that key on the reference alone then mix variables up): Real i has valueReference i,
 *     Integer i has n_reals + i, Boolean i has n_reals + n_integers + i. modelDescription.xml must match.
 *   - Start values in the variable tables must match the start attributes in modelDescription.xml
 *     (outputs have no start in the XML; their table value is just the internal initial value).
 *   - Parameters may be set only before fmi2ExitInitializationMode, inputs at any time, outputs never.
 */
#ifndef VALIDIBOT_FMU_COMMON_H
#define VALIDIBOT_FMU_COMMON_H

#include <stddef.h>

#include "fmi2Functions.h"

typedef enum { FMU_PARAMETER, FMU_INPUT, FMU_OUTPUT } FmuCausality;

typedef struct {
    const char *name;
    FmuCausality causality;
    fmi2Real start;
} FmuRealVariable;

typedef struct {
    const char *name;
    FmuCausality causality;
    fmi2Integer start;
} FmuIntegerVariable;

typedef struct {
    const char *name;
    FmuCausality causality;
    fmi2Boolean start;
} FmuBooleanVariable;

typedef enum {
    FMU_STATE_INSTANTIATED,
    FMU_STATE_INITIALIZATION,
    FMU_STATE_STEP,
    FMU_STATE_TERMINATED,
    FMU_STATE_ERROR
} FmuState;

/* One instance of a model: the current values of all variables plus the bookkeeping fmu_common.c needs. */
typedef struct {
    char *instance_name;
    fmi2CallbackFunctions callbacks;
    fmi2Boolean logging_on;
    FmuState state;
    fmi2Real time;      /* current communication point */
    fmi2Real *reals;    /* indexed by Real value reference */
    fmi2Integer *integers;
    fmi2Boolean *booleans;
} FmuInstance;

/* What a model provides: its variable tables and two hooks. */
typedef struct {
    const FmuRealVariable *reals;
    size_t n_reals;
    const FmuIntegerVariable *integers;
    size_t n_integers;
    const FmuBooleanVariable *booleans;
    size_t n_booleans;
    /* Called from fmi2ExitInitializationMode: validate parameters, compute outputs at the start time.
       May be NULL. Return fmi2Error (after fmu_log) to reject the parameter set. */
    fmi2Status (*initialize)(FmuInstance *inst);
    /* Advance the model from t to t + h. inst->time is updated by the caller after an OK return. */
    fmi2Status (*do_step)(FmuInstance *inst, fmi2Real t, fmi2Real h);
} FmuModel;

/* Defined by each model.c. */
extern const FmuModel fmu_model;

/* printf-style logging through the importer's logger callback. Messages with status fmi2OK are only
   forwarded when debug logging is on; warnings and errors are always forwarded. */
void fmu_log(const FmuInstance *inst, fmi2Status status, const char *category, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif /* VALIDIBOT_FMU_COMMON_H */
