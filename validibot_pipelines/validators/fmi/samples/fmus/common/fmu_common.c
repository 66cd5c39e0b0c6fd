/*
 * The FMI 2.0 Co-Simulation function set, implemented once for all validibot sample FMUs.
 *
 * A model links this file with its model.c, which defines `fmu_model` (see fmu_common.h). This file owns the
 * FMI state machine, value storage, argument checks and logging so each model stays a few lines long.
 * Optional capabilities (FMU state, directional derivatives, input interpolation, asynchronous steps) are
 * declared false in every modelDescription.xml, so their functions exist (importers resolve them all) but
 * return fmi2Error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fmu_common.h"

#define STATE_BIT(s) (1u << (s))
#define ANY_STATE 0xFFFFu

/* ------------------------------------------------------------------------------------------------ helpers */

void fmu_log(const FmuInstance *inst, fmi2Status status, const char *category, const char *fmt, ...) {
    char raw[512];
    char escaped[1024];
    size_t j = 0;
    va_list args;

    if (inst == NULL || inst->callbacks.logger == NULL) {
        return;
    }
    if (status == fmi2OK && !inst->logging_on) {
        return;
    }
    va_start(args, fmt);
    vsnprintf(raw, sizeof raw, fmt, args);
    va_end(args);
    /* Importers treat the message as a printf format again: double every '%' so text from the instance name
       or a value can never be read as a conversion specifier. */
    for (size_t i = 0; raw[i] != '\0' && j + 2 < sizeof escaped; ++i) {
        if (raw[i] == '%') {
            escaped[j++] = '%';
        }
        escaped[j++] = raw[i];
    }
    escaped[j] = '\0';
    inst->callbacks.logger(inst->callbacks.componentEnvironment,
                           inst->instance_name != NULL ? inst->instance_name : "?", status, category, escaped);
}

/* Returns the instance if it may call `function` in its current state, else logs and returns NULL. */
static FmuInstance *checked(fmi2Component c, const char *function, unsigned allowed_states) {
    FmuInstance *inst = (FmuInstance *)c;

    if (inst == NULL) {
        return NULL;
    }
    if ((allowed_states & STATE_BIT(inst->state)) == 0) {
        fmu_log(inst, fmi2Error, "logStatusError", "%s must not be called in state %d", function, (int)inst->state);
        return NULL;
    }
    return inst;
}

static void reset_values(FmuInstance *inst) {
    for (size_t i = 0; i < fmu_model.n_reals; ++i) {
        inst->reals[i] = fmu_model.reals[i].start;
    }
    for (size_t i = 0; i < fmu_model.n_integers; ++i) {
        inst->integers[i] = fmu_model.integers[i].start;
    }
    for (size_t i = 0; i < fmu_model.n_booleans; ++i) {
        inst->booleans[i] = fmu_model.booleans[i].start;
    }
    inst->time = 0.0;
    inst->state = FMU_STATE_INSTANTIATED;
}

/* Parameters are "fixed": settable until initialization ends. Inputs: always. Outputs: never. */
static fmi2Status check_settable(const FmuInstance *inst, const char *name, FmuCausality causality) {
    if (causality == FMU_OUTPUT) {
        fmu_log(inst, fmi2Error, "logStatusError", "variable %s is an output and cannot be set", name);
        return fmi2Error;
    }
    if (causality == FMU_PARAMETER && inst->state != FMU_STATE_INSTANTIATED &&
        inst->state != FMU_STATE_INITIALIZATION) {
        fmu_log(inst, fmi2Error, "logStatusError", "fixed parameter %s cannot be set after initialization", name);
        return fmi2Error;
    }
    return fmi2OK;
}

/* Maps a value reference to an index into the table of one type, whose references start at `base`. */
static int lookup(fmi2ValueReference vr, size_t base, size_t count, size_t *index) {
    if (vr < base || vr - base >= count) {
        return 0;
    }
    *index = vr - base;
    return 1;
}

static fmi2Status unknown_vr(const FmuInstance *inst, const char *type, fmi2ValueReference vr) {
    fmu_log(inst, fmi2Error, "logStatusError", "unknown %s value reference %u", type, vr);
    return fmi2Error;
}

static fmi2Status unsupported(fmi2Component c, const char *function) {
    fmu_log((const FmuInstance *)c, fmi2Error, "logStatusError", "%s is not supported by this FMU", function);
    return fmi2Error;
}

#define GET_STATES \
    (STATE_BIT(FMU_STATE_INITIALIZATION) | STATE_BIT(FMU_STATE_STEP) | STATE_BIT(FMU_STATE_TERMINATED) | \
     STATE_BIT(FMU_STATE_ERROR))
#define SET_STATES \
    (STATE_BIT(FMU_STATE_INSTANTIATED) | STATE_BIT(FMU_STATE_INITIALIZATION) | STATE_BIT(FMU_STATE_STEP))

/* ------------------------------------------------------------------------------------- inquiry and setup */

const char *fmi2GetTypesPlatform(void) { return fmi2TypesPlatform; }

const char *fmi2GetVersion(void) { return fmi2Version; }

fmi2Status fmi2SetDebugLogging(fmi2Component c, fmi2Boolean loggingOn, size_t nCategories,
                               const fmi2String categories[]) {
    FmuInstance *inst = checked(c, "fmi2SetDebugLogging", ANY_STATE);

    (void)nCategories; /* no log categories are declared: the flag applies to all messages */
    (void)categories;
    if (inst == NULL) {
        return fmi2Error;
    }
    inst->logging_on = loggingOn;
    return fmi2OK;
}

fmi2Component fmi2Instantiate(fmi2String instanceName, fmi2Type fmuType, fmi2String fmuGUID,
                              fmi2String fmuResourceLocation, const fmi2CallbackFunctions *functions,
                              fmi2Boolean visible, fmi2Boolean loggingOn) {
    FmuInstance *inst;
    FmuInstance probe; /* lets fmu_log report problems before the instance exists */

    (void)fmuResourceLocation;
    (void)visible;
    if (functions == NULL || functions->allocateMemory == NULL || functions->freeMemory == NULL) {
        return NULL;
    }
    memset(&probe, 0, sizeof probe);
    probe.callbacks = *functions;
    probe.instance_name = (char *)instanceName;
    probe.logging_on = loggingOn;
    if (fmuType != fmi2CoSimulation) {
        fmu_log(&probe, fmi2Error, "logStatusError", "this FMU supports Co-Simulation only");
        return NULL;
    }
#ifdef FMU_GUID
    if (fmuGUID == NULL || strcmp(fmuGUID, FMU_GUID) != 0) {
        fmu_log(&probe, fmi2Error, "logStatusError", "GUID %s does not match the binary's GUID %s",
                fmuGUID != NULL ? fmuGUID : "(null)", FMU_GUID);
        return NULL;
    }
#else
    (void)fmuGUID;
#endif
    inst = (FmuInstance *)functions->allocateMemory(1, sizeof(FmuInstance));
    if (inst == NULL) {
        return NULL;
    }
    inst->callbacks = *functions;
    inst->logging_on = loggingOn;
    /* allocate at least one element so a model without variables of a type still gets a valid pointer */
    inst->reals = (fmi2Real *)functions->allocateMemory(fmu_model.n_reals + 1, sizeof(fmi2Real));
    inst->integers = (fmi2Integer *)functions->allocateMemory(fmu_model.n_integers + 1, sizeof(fmi2Integer));
    inst->booleans = (fmi2Boolean *)functions->allocateMemory(fmu_model.n_booleans + 1, sizeof(fmi2Boolean));
    if (instanceName != NULL) {
        inst->instance_name = (char *)functions->allocateMemory(strlen(instanceName) + 1, 1);
        if (inst->instance_name != NULL) {
            strcpy(inst->instance_name, instanceName);
        }
    }
    if (inst->reals == NULL || inst->integers == NULL || inst->booleans == NULL ||
        (instanceName != NULL && inst->instance_name == NULL)) {
        fmu_log(&probe, fmi2Error, "logStatusError", "out of memory");
        fmi2FreeInstance(inst);
        return NULL;
    }
    reset_values(inst);
    fmu_log(inst, fmi2OK, "logAll", "instantiated");
    return inst;
}

void fmi2FreeInstance(fmi2Component c) {
    FmuInstance *inst = (FmuInstance *)c;
    fmi2CallbackFreeMemory free_memory;

    if (inst == NULL) {
        return;
    }
    free_memory = inst->callbacks.freeMemory;
    free_memory(inst->reals);
    free_memory(inst->integers);
    free_memory(inst->booleans);
    free_memory(inst->instance_name);
    free_memory(inst);
}

fmi2Status fmi2SetupExperiment(fmi2Component c, fmi2Boolean toleranceDefined, fmi2Real tolerance,
                               fmi2Real startTime, fmi2Boolean stopTimeDefined, fmi2Real stopTime) {
    FmuInstance *inst = checked(c, "fmi2SetupExperiment", STATE_BIT(FMU_STATE_INSTANTIATED));

    (void)toleranceDefined; /* steps are exact or analytic: no tolerance to honour */
    (void)tolerance;
    (void)stopTimeDefined;
    (void)stopTime;
    if (inst == NULL) {
        return fmi2Error;
    }
    inst->time = startTime;
    return fmi2OK;
}

fmi2Status fmi2EnterInitializationMode(fmi2Component c) {
    FmuInstance *inst = checked(c, "fmi2EnterInitializationMode", STATE_BIT(FMU_STATE_INSTANTIATED));

    if (inst == NULL) {
        return fmi2Error;
    }
    inst->state = FMU_STATE_INITIALIZATION;
    return fmi2OK;
}

fmi2Status fmi2ExitInitializationMode(fmi2Component c) {
    FmuInstance *inst = checked(c, "fmi2ExitInitializationMode", STATE_BIT(FMU_STATE_INITIALIZATION));
    fmi2Status status = fmi2OK;

    if (inst == NULL) {
        return fmi2Error;
    }
    if (fmu_model.initialize != NULL) {
        status = fmu_model.initialize(inst);
    }
    inst->state = status <= fmi2Warning ? FMU_STATE_STEP : FMU_STATE_ERROR;
    return status;
}

fmi2Status fmi2Terminate(fmi2Component c) {
    FmuInstance *inst = checked(c, "fmi2Terminate",
                                STATE_BIT(FMU_STATE_INITIALIZATION) | STATE_BIT(FMU_STATE_STEP) |
                                    STATE_BIT(FMU_STATE_ERROR));

    if (inst == NULL) {
        return fmi2Error;
    }
    inst->state = FMU_STATE_TERMINATED;
    return fmi2OK;
}

fmi2Status fmi2Reset(fmi2Component c) {
    FmuInstance *inst = checked(c, "fmi2Reset", ANY_STATE);

    if (inst == NULL) {
        return fmi2Error;
    }
    reset_values(inst);
    return fmi2OK;
}

/* ------------------------------------------------------------------------------------- getters, setters */

fmi2Status fmi2GetReal(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, fmi2Real value[]) {
    FmuInstance *inst = checked(c, "fmi2GetReal", GET_STATES);

    if (inst == NULL) {
        return fmi2Error;
    }
    for (size_t i = 0; i < nvr; ++i) {
        size_t k;

        if (!lookup(vr[i], 0, fmu_model.n_reals, &k)) {
            return unknown_vr(inst, "Real", vr[i]);
        }
        value[i] = inst->reals[k];
    }
    return fmi2OK;
}

fmi2Status fmi2GetInteger(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, fmi2Integer value[]) {
    FmuInstance *inst = checked(c, "fmi2GetInteger", GET_STATES);

    if (inst == NULL) {
        return fmi2Error;
    }
    for (size_t i = 0; i < nvr; ++i) {
        size_t k;

        if (!lookup(vr[i], fmu_model.n_reals, fmu_model.n_integers, &k)) {
            return unknown_vr(inst, "Integer", vr[i]);
        }
        value[i] = inst->integers[k];
    }
    return fmi2OK;
}

fmi2Status fmi2GetBoolean(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, fmi2Boolean value[]) {
    FmuInstance *inst = checked(c, "fmi2GetBoolean", GET_STATES);

    if (inst == NULL) {
        return fmi2Error;
    }
    for (size_t i = 0; i < nvr; ++i) {
        size_t k;

        if (!lookup(vr[i], fmu_model.n_reals + fmu_model.n_integers, fmu_model.n_booleans, &k)) {
            return unknown_vr(inst, "Boolean", vr[i]);
        }
        value[i] = inst->booleans[k];
    }
    return fmi2OK;
}

fmi2Status fmi2GetString(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, fmi2String value[]) {
    FmuInstance *inst = checked(c, "fmi2GetString", GET_STATES);

    (void)value;
    if (inst == NULL) {
        return fmi2Error;
    }
    return nvr == 0 ? fmi2OK : unknown_vr(inst, "String", vr[0]); /* no String variables */
}

fmi2Status fmi2SetReal(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, const fmi2Real value[]) {
    FmuInstance *inst = checked(c, "fmi2SetReal", SET_STATES);

    if (inst == NULL) {
        return fmi2Error;
    }
    for (size_t i = 0; i < nvr; ++i) {
        size_t k;

        if (!lookup(vr[i], 0, fmu_model.n_reals, &k)) {
            return unknown_vr(inst, "Real", vr[i]);
        }
        if (check_settable(inst, fmu_model.reals[k].name, fmu_model.reals[k].causality) != fmi2OK) {
            return fmi2Error;
        }
        inst->reals[k] = value[i];
    }
    return fmi2OK;
}

fmi2Status fmi2SetInteger(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, const fmi2Integer value[]) {
    FmuInstance *inst = checked(c, "fmi2SetInteger", SET_STATES);

    if (inst == NULL) {
        return fmi2Error;
    }
    for (size_t i = 0; i < nvr; ++i) {
        size_t k;

        if (!lookup(vr[i], fmu_model.n_reals, fmu_model.n_integers, &k)) {
            return unknown_vr(inst, "Integer", vr[i]);
        }
        if (check_settable(inst, fmu_model.integers[k].name, fmu_model.integers[k].causality) != fmi2OK) {
            return fmi2Error;
        }
        inst->integers[k] = value[i];
    }
    return fmi2OK;
}

fmi2Status fmi2SetBoolean(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, const fmi2Boolean value[]) {
    FmuInstance *inst = checked(c, "fmi2SetBoolean", SET_STATES);

    if (inst == NULL) {
        return fmi2Error;
    }
    for (size_t i = 0; i < nvr; ++i) {
        size_t k;

        if (!lookup(vr[i], fmu_model.n_reals + fmu_model.n_integers, fmu_model.n_booleans, &k)) {
            return unknown_vr(inst, "Boolean", vr[i]);
        }
        if (check_settable(inst, fmu_model.booleans[k].name, fmu_model.booleans[k].causality) != fmi2OK) {
            return fmi2Error;
        }
        inst->booleans[k] = value[i] ? fmi2True : fmi2False;
    }
    return fmi2OK;
}

fmi2Status fmi2SetString(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, const fmi2String value[]) {
    FmuInstance *inst = checked(c, "fmi2SetString", SET_STATES);

    (void)value;
    if (inst == NULL) {
        return fmi2Error;
    }
    return nvr == 0 ? fmi2OK : unknown_vr(inst, "String", vr[0]); /* no String variables */
}

/* --------------------------------------------------- optional capabilities (all declared false) */

fmi2Status fmi2GetFMUstate(fmi2Component c, fmi2FMUstate *FMUstate) {
    (void)FMUstate;
    return unsupported(c, "fmi2GetFMUstate");
}

fmi2Status fmi2SetFMUstate(fmi2Component c, fmi2FMUstate FMUstate) {
    (void)FMUstate;
    return unsupported(c, "fmi2SetFMUstate");
}

fmi2Status fmi2FreeFMUstate(fmi2Component c, fmi2FMUstate *FMUstate) {
    (void)FMUstate;
    return unsupported(c, "fmi2FreeFMUstate");
}

fmi2Status fmi2SerializedFMUstateSize(fmi2Component c, fmi2FMUstate FMUstate, size_t *size) {
    (void)FMUstate;
    (void)size;
    return unsupported(c, "fmi2SerializedFMUstateSize");
}

fmi2Status fmi2SerializeFMUstate(fmi2Component c, fmi2FMUstate FMUstate, fmi2Byte serializedState[], size_t size) {
    (void)FMUstate;
    (void)serializedState;
    (void)size;
    return unsupported(c, "fmi2SerializeFMUstate");
}

fmi2Status fmi2DeSerializeFMUstate(fmi2Component c, const fmi2Byte serializedState[], size_t size,
                                   fmi2FMUstate *FMUstate) {
    (void)serializedState;
    (void)size;
    (void)FMUstate;
    return unsupported(c, "fmi2DeSerializeFMUstate");
}

fmi2Status fmi2GetDirectionalDerivative(fmi2Component c, const fmi2ValueReference vUnknown_ref[], size_t nUnknown,
                                        const fmi2ValueReference vKnown_ref[], size_t nKnown,
                                        const fmi2Real dvKnown[], fmi2Real dvUnknown[]) {
    (void)vUnknown_ref;
    (void)nUnknown;
    (void)vKnown_ref;
    (void)nKnown;
    (void)dvKnown;
    (void)dvUnknown;
    return unsupported(c, "fmi2GetDirectionalDerivative");
}

fmi2Status fmi2SetRealInputDerivatives(fmi2Component c, const fmi2ValueReference vr[], size_t nvr,
                                       const fmi2Integer order[], const fmi2Real value[]) {
    (void)vr;
    (void)nvr;
    (void)order;
    (void)value;
    return unsupported(c, "fmi2SetRealInputDerivatives");
}

fmi2Status fmi2GetRealOutputDerivatives(fmi2Component c, const fmi2ValueReference vr[], size_t nvr,
                                        const fmi2Integer order[], fmi2Real value[]) {
    (void)vr;
    (void)nvr;
    (void)order;
    (void)value;
    return unsupported(c, "fmi2GetRealOutputDerivatives");
}

/* ----------------------------------------------------------------------------------------------- stepping */

fmi2Status fmi2DoStep(fmi2Component c, fmi2Real currentCommunicationPoint, fmi2Real communicationStepSize,
                      fmi2Boolean noSetFMUStatePriorToCurrentPoint) {
    FmuInstance *inst = checked(c, "fmi2DoStep", STATE_BIT(FMU_STATE_STEP));
    fmi2Status status;

    (void)noSetFMUStatePriorToCurrentPoint;
    if (inst == NULL) {
        return fmi2Error;
    }
    if (communicationStepSize < 0.0) {
        fmu_log(inst, fmi2Error, "logStatusError", "negative communication step size %g", communicationStepSize);
        return fmi2Error;
    }
    status = fmu_model.do_step(inst, currentCommunicationPoint, communicationStepSize);
    if (status <= fmi2Warning) {
        inst->time = currentCommunicationPoint + communicationStepSize;
    } else if (status >= fmi2Error) {
        inst->state = FMU_STATE_ERROR;
    }
    return status;
}

fmi2Status fmi2CancelStep(fmi2Component c) {
    return unsupported(c, "fmi2CancelStep"); /* steps are synchronous: nothing is ever pending */
}

/* No step is ever pending, so only "last successful time" and "terminated" have an answer; the rest report
   fmi2Discard, which the standard reserves for "status not available". */

fmi2Status fmi2GetStatus(fmi2Component c, const fmi2StatusKind s, fmi2Status *value) {
    (void)s;
    (void)value;
    return checked(c, "fmi2GetStatus", ANY_STATE) != NULL ? fmi2Discard : fmi2Error;
}

fmi2Status fmi2GetRealStatus(fmi2Component c, const fmi2StatusKind s, fmi2Real *value) {
    FmuInstance *inst = checked(c, "fmi2GetRealStatus", ANY_STATE);

    if (inst == NULL) {
        return fmi2Error;
    }
    if (s == fmi2LastSuccessfulTime) {
        *value = inst->time;
        return fmi2OK;
    }
    return fmi2Discard;
}

fmi2Status fmi2GetIntegerStatus(fmi2Component c, const fmi2StatusKind s, fmi2Integer *value) {
    (void)s;
    (void)value;
    return checked(c, "fmi2GetIntegerStatus", ANY_STATE) != NULL ? fmi2Discard : fmi2Error;
}

fmi2Status fmi2GetBooleanStatus(fmi2Component c, const fmi2StatusKind s, fmi2Boolean *value) {
    FmuInstance *inst = checked(c, "fmi2GetBooleanStatus", ANY_STATE);

    if (inst == NULL) {
        return fmi2Error;
    }
    if (s == fmi2Terminated) {
        *value = fmi2False; /* these models never ask to end the simulation early */
        return fmi2OK;
    }
    return fmi2Discard;
}

fmi2Status fmi2GetStringStatus(fmi2Component c, const fmi2StatusKind s, fmi2String *value) {
    (void)s;
    (void)value;
    return checked(c, "fmi2GetStringStatus", ANY_STATE) != NULL ? fmi2Discard : fmi2Error;
}
