/*
 * The FMI 2.0 function set (Model Exchange and Co-Simulation), implemented once for the FMI 2.0 test FMUs
 * under tests/fmi_cases (see fmi2_core.h).
 *
 * Deliberately small: modes are tracked only as far as settability needs. Memory comes from the importer's
 * allocateMemory/freeMemory callbacks as FMI 2.0 requires. Uses no libm function so a source-only FMU built
 * by an importer's generic build links without -lm.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fmi2_core.h"

/* ------------------------------------------------------------------------------------------------ helpers */

void fmi2_log(const Fmi2Instance *inst, fmi2Status status, const char *fmt, ...) {
    char raw[512];
    char escaped[1024];
    size_t j = 0;
    va_list args;

    if (inst == NULL || inst->callbacks.logger == NULL || (status == fmi2OK && !inst->logging_on)) {
        return;
    }
    va_start(args, fmt);
    vsnprintf(raw, sizeof raw, fmt, args);
    va_end(args);
    /* the importer formats the message again: double every '%' */
    for (size_t i = 0; raw[i] != '\0' && j + 2 < sizeof escaped; ++i) {
        if (raw[i] == '%') {
            escaped[j++] = '%';
        }
        escaped[j++] = raw[i];
    }
    escaped[j] = '\0';
    inst->callbacks.logger(inst->callbacks.componentEnvironment, inst->name, status,
                           status == fmi2OK ? "logEvents" : "logStatusError", escaped);
}

static fmi2Status unsupported(fmi2Component c, const char *function) {
    fmi2_log((Fmi2Instance *)c, fmi2Error, "%s is not supported by this FMU", function);
    return fmi2Error;
}

static const Fmi2Variable *find_variable(fmi2ValueReference vr) {
    for (size_t i = 0; i < fmi2_model.n_variables; ++i) {
        if (fmi2_model.variables[i].vr == vr) {
            return &fmi2_model.variables[i];
        }
    }
    return NULL;
}

static void *address(const Fmi2Instance *inst, const Fmi2Variable *v) { return (char *)inst->data + v->offset; }

static size_t type_size(Fmi2VarType type) {
    switch (type) {
    case V_REAL: return sizeof(fmi2Real);
    case V_INTEGER: return sizeof(fmi2Integer);
    case V_BOOLEAN: return sizeof(fmi2Boolean);
    case V_STRING: return sizeof(fmi2String);
    }
    return 0;
}

static const Fmi2Variable *typed_variable(const Fmi2Instance *inst, fmi2ValueReference vr, Fmi2VarType type) {
    static const char *names[] = {"Real", "Integer", "Boolean", "String"};
    const Fmi2Variable *v = find_variable(vr);

    if (v == NULL || v->type != type) {
        fmi2_log(inst, fmi2Error, "value reference %u is not a %s variable", vr, names[type]);
        return NULL;
    }
    return v;
}

static fmi2Status get_values(fmi2Component c, Fmi2VarType type, const fmi2ValueReference vr[], size_t nvr,
                             void *values) {
    Fmi2Instance *inst = (Fmi2Instance *)c;
    const size_t size = type_size(type);

    if (inst == NULL) {
        return fmi2Error;
    }
    fmi2_model.update(inst);
    for (size_t i = 0; i < nvr; ++i) {
        const Fmi2Variable *v = typed_variable(inst, vr[i], type);

        if (v == NULL) {
            return fmi2Error;
        }
        memcpy((char *)values + i * size, address(inst, v), size);
    }
    return fmi2OK;
}

static fmi2Status set_values(fmi2Component c, Fmi2VarType type, const fmi2ValueReference vr[], size_t nvr,
                             const void *values) {
    Fmi2Instance *inst = (Fmi2Instance *)c;
    const size_t size = type_size(type);

    if (inst == NULL) {
        return fmi2Error;
    }
    for (size_t i = 0; i < nvr; ++i) {
        const Fmi2Variable *v = typed_variable(inst, vr[i], type);

        if (v == NULL) {
            return fmi2Error;
        }
        /* parameters are "fixed": settable until initialization ends; inputs always; nothing else */
        if (!(v->causality == C_INPUT ||
              (v->causality == C_PARAMETER && (inst->mode == MODE_INSTANTIATED || inst->mode == MODE_INITIALIZATION)))) {
            fmi2_log(inst, fmi2Error, "variable with value reference %u cannot be set now", v->vr);
            return fmi2Error;
        }
        memcpy(address(inst, v), (const char *)values + i * size, size);
    }
    return fmi2OK;
}

static void reset_data(Fmi2Instance *inst) {
    memset(inst->data, 0, fmi2_model.data_size);
    fmi2_model.set_start_values(inst->data);
    inst->time = 0.0;
    inst->mode = MODE_INSTANTIATED;
}

/* ------------------------------------------------------------------------------------- inquiry and setup */

const char *fmi2GetTypesPlatform(void) { return fmi2TypesPlatform; }

const char *fmi2GetVersion(void) { return fmi2Version; }

fmi2Status fmi2SetDebugLogging(fmi2Component c, fmi2Boolean loggingOn, size_t nCategories,
                               const fmi2String categories[]) {
    (void)nCategories;
    (void)categories;
    if (c == NULL) {
        return fmi2Error;
    }
    ((Fmi2Instance *)c)->logging_on = loggingOn;
    return fmi2OK;
}

fmi2Component fmi2Instantiate(fmi2String instanceName, fmi2Type fmuType, fmi2String fmuGUID,
                              fmi2String fmuResourceLocation, const fmi2CallbackFunctions *functions,
                              fmi2Boolean visible, fmi2Boolean loggingOn) {
    Fmi2Instance probe;
    Fmi2Instance *inst;
    const int wanted = fmuType == fmi2ModelExchange ? INTERFACE_ME : INTERFACE_CS;

    (void)fmuResourceLocation;
    (void)visible;
    if (functions == NULL || functions->allocateMemory == NULL || functions->freeMemory == NULL) {
        return NULL;
    }
    memset(&probe, 0, sizeof probe);
    probe.callbacks = *functions;
    probe.name = (char *)(instanceName != NULL ? instanceName : "");
    probe.logging_on = loggingOn;
    if ((fmi2_model.interfaces & wanted) == 0) {
        fmi2_log(&probe, fmi2Error, "this FMU does not implement the requested interface type");
        return NULL;
    }
#ifdef FMU_GUID
    if (fmuGUID == NULL || strcmp(fmuGUID, FMU_GUID) != 0) {
        fmi2_log(&probe, fmi2Error, "GUID %s does not match %s", fmuGUID != NULL ? fmuGUID : "(null)", FMU_GUID);
        return NULL;
    }
#else
    (void)fmuGUID;
#endif
    inst = (Fmi2Instance *)functions->allocateMemory(1, sizeof *inst);
    if (inst == NULL) {
        return NULL;
    }
    *inst = probe;
    inst->interface = fmuType;
    inst->name = (char *)functions->allocateMemory(strlen(probe.name) + 1, 1);
    inst->data = functions->allocateMemory(1, fmi2_model.data_size);
    if (inst->name == NULL || inst->data == NULL) {
        functions->freeMemory(inst->name);
        functions->freeMemory(inst->data);
        functions->freeMemory(inst);
        return NULL;
    }
    strcpy(inst->name, probe.name);
    reset_data(inst);
    return inst;
}

void fmi2FreeInstance(fmi2Component c) {
    Fmi2Instance *inst = (Fmi2Instance *)c;

    if (inst != NULL) {
        fmi2CallbackFreeMemory free_memory = inst->callbacks.freeMemory;

        free_memory(inst->name);
        free_memory(inst->data);
        free_memory(inst);
    }
}

fmi2Status fmi2SetupExperiment(fmi2Component c, fmi2Boolean toleranceDefined, fmi2Real tolerance,
                               fmi2Real startTime, fmi2Boolean stopTimeDefined, fmi2Real stopTime) {
    (void)toleranceDefined;
    (void)tolerance;
    (void)stopTimeDefined;
    (void)stopTime;
    if (c == NULL) {
        return fmi2Error;
    }
    ((Fmi2Instance *)c)->time = startTime;
    return fmi2OK;
}

fmi2Status fmi2EnterInitializationMode(fmi2Component c) {
    if (c == NULL) {
        return fmi2Error;
    }
    ((Fmi2Instance *)c)->mode = MODE_INITIALIZATION;
    return fmi2OK;
}

fmi2Status fmi2ExitInitializationMode(fmi2Component c) {
    Fmi2Instance *inst = (Fmi2Instance *)c;

    if (inst == NULL) {
        return fmi2Error;
    }
    fmi2_model.update(inst);
    inst->mode = MODE_RUNNING;
    return fmi2OK;
}

fmi2Status fmi2Terminate(fmi2Component c) {
    if (c == NULL) {
        return fmi2Error;
    }
    ((Fmi2Instance *)c)->mode = MODE_TERMINATED;
    return fmi2OK;
}

fmi2Status fmi2Reset(fmi2Component c) {
    if (c == NULL) {
        return fmi2Error;
    }
    reset_data((Fmi2Instance *)c);
    return fmi2OK;
}

/* ------------------------------------------------------------------------------------- getters, setters */

fmi2Status fmi2GetReal(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, fmi2Real value[]) {
    return get_values(c, V_REAL, vr, nvr, value);
}

fmi2Status fmi2GetInteger(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, fmi2Integer value[]) {
    return get_values(c, V_INTEGER, vr, nvr, value);
}

fmi2Status fmi2GetBoolean(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, fmi2Boolean value[]) {
    return get_values(c, V_BOOLEAN, vr, nvr, value);
}

fmi2Status fmi2GetString(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, fmi2String value[]) {
    /* the model keeps `const char *` values (string literals): copy the pointers */
    return get_values(c, V_STRING, vr, nvr, (void *)value);
}

fmi2Status fmi2SetReal(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, const fmi2Real value[]) {
    return set_values(c, V_REAL, vr, nvr, value);
}

fmi2Status fmi2SetInteger(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, const fmi2Integer value[]) {
    return set_values(c, V_INTEGER, vr, nvr, value);
}

fmi2Status fmi2SetBoolean(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, const fmi2Boolean value[]) {
    return set_values(c, V_BOOLEAN, vr, nvr, value);
}

fmi2Status fmi2SetString(fmi2Component c, const fmi2ValueReference vr[], size_t nvr, const fmi2String value[]) {
    (void)vr;
    (void)nvr;
    (void)value;
    return unsupported(c, "fmi2SetString (no String inputs or parameters)");
}

/* ------------------------------------------------------------------------- optional, declared unsupported */

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

/* ---------------------------------------------------------------------------------------- Model Exchange */

fmi2Status fmi2EnterEventMode(fmi2Component c) { return c != NULL ? fmi2OK : fmi2Error; }

fmi2Status fmi2NewDiscreteStates(fmi2Component c, fmi2EventInfo *eventInfo) {
    if (c == NULL) {
        return fmi2Error;
    }
    /* no discrete states and no time events */
    eventInfo->newDiscreteStatesNeeded = fmi2False;
    eventInfo->terminateSimulation = fmi2False;
    eventInfo->nominalsOfContinuousStatesChanged = fmi2False;
    eventInfo->valuesOfContinuousStatesChanged = fmi2False;
    eventInfo->nextEventTimeDefined = fmi2False;
    eventInfo->nextEventTime = 0.0;
    return fmi2OK;
}

fmi2Status fmi2EnterContinuousTimeMode(fmi2Component c) { return c != NULL ? fmi2OK : fmi2Error; }

fmi2Status fmi2CompletedIntegratorStep(fmi2Component c, fmi2Boolean noSetFMUStatePriorToCurrentPoint,
                                       fmi2Boolean *enterEventMode, fmi2Boolean *terminateSimulation) {
    (void)noSetFMUStatePriorToCurrentPoint;
    if (c == NULL) {
        return fmi2Error;
    }
    *enterEventMode = fmi2False;
    *terminateSimulation = fmi2False;
    return fmi2OK;
}

fmi2Status fmi2SetTime(fmi2Component c, fmi2Real time) {
    if (c == NULL) {
        return fmi2Error;
    }
    ((Fmi2Instance *)c)->time = time;
    return fmi2OK;
}

/* Copies between the Real variables named by `vrs` and a contiguous array. */
static fmi2Status copy_states(fmi2Component c, const fmi2ValueReference *vrs, fmi2Real array[], size_t n,
                              int to_array) {
    Fmi2Instance *inst = (Fmi2Instance *)c;

    if (inst == NULL || n != fmi2_model.n_states) {
        fmi2_log(inst, fmi2Error, "expected %zu continuous states, got %zu", fmi2_model.n_states, n);
        return fmi2Error;
    }
    for (size_t i = 0; i < n; ++i) {
        fmi2Real *value = (fmi2Real *)address(inst, find_variable(vrs[i]));

        if (to_array) {
            array[i] = *value;
        } else {
            *value = array[i];
        }
    }
    return fmi2OK;
}

fmi2Status fmi2SetContinuousStates(fmi2Component c, const fmi2Real x[], size_t nx) {
    return copy_states(c, fmi2_model.state_vrs, (fmi2Real *)x, nx, 0);
}

fmi2Status fmi2GetDerivatives(fmi2Component c, fmi2Real derivatives[], size_t nx) {
    if (c == NULL) {
        return fmi2Error;
    }
    fmi2_model.update((Fmi2Instance *)c);
    return copy_states(c, fmi2_model.derivative_vrs, derivatives, nx, 1);
}

fmi2Status fmi2GetEventIndicators(fmi2Component c, fmi2Real eventIndicators[], size_t ni) {
    (void)eventIndicators;
    return c != NULL && ni == 0 ? fmi2OK : fmi2Error;
}

fmi2Status fmi2GetContinuousStates(fmi2Component c, fmi2Real x[], size_t nx) {
    return copy_states(c, fmi2_model.state_vrs, x, nx, 1);
}

fmi2Status fmi2GetNominalsOfContinuousStates(fmi2Component c, fmi2Real x_nominal[], size_t nx) {
    if (c == NULL || nx != fmi2_model.n_states) {
        return fmi2Error;
    }
    for (size_t i = 0; i < nx; ++i) {
        x_nominal[i] = 1.0;
    }
    return fmi2OK;
}

/* ----------------------------------------------------------------------------------------- Co-Simulation */

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

fmi2Status fmi2DoStep(fmi2Component c, fmi2Real currentCommunicationPoint, fmi2Real communicationStepSize,
                      fmi2Boolean noSetFMUStatePriorToCurrentCommunicationPoint) {
    Fmi2Instance *inst = (Fmi2Instance *)c;

    (void)noSetFMUStatePriorToCurrentCommunicationPoint;
    if (inst == NULL || inst->interface != fmi2CoSimulation) {
        return unsupported(c, "fmi2DoStep outside Co-Simulation");
    }
    if (communicationStepSize <= 0.0) {
        fmi2_log(inst, fmi2Error, "communicationStepSize must be > 0, got %g", communicationStepSize);
        return fmi2Error;
    }
    if (fmi2_model.do_step != NULL) {
        fmi2_model.do_step(inst, currentCommunicationPoint, communicationStepSize);
    }
    inst->time = currentCommunicationPoint + communicationStepSize;
    return fmi2OK;
}

fmi2Status fmi2CancelStep(fmi2Component c) { return unsupported(c, "fmi2CancelStep"); }

fmi2Status fmi2GetStatus(fmi2Component c, const fmi2StatusKind s, fmi2Status *value) {
    (void)s;
    (void)value;
    return unsupported(c, "fmi2GetStatus");
}

fmi2Status fmi2GetRealStatus(fmi2Component c, const fmi2StatusKind s, fmi2Real *value) {
    if (c != NULL && s == fmi2LastSuccessfulTime) {
        *value = ((Fmi2Instance *)c)->time;
        return fmi2OK;
    }
    return unsupported(c, "fmi2GetRealStatus for this status kind");
}

fmi2Status fmi2GetIntegerStatus(fmi2Component c, const fmi2StatusKind s, fmi2Integer *value) {
    (void)s;
    (void)value;
    return unsupported(c, "fmi2GetIntegerStatus");
}

fmi2Status fmi2GetBooleanStatus(fmi2Component c, const fmi2StatusKind s, fmi2Boolean *value) {
    if (c != NULL && s == fmi2Terminated) {
        *value = fmi2False;
        return fmi2OK;
    }
    return unsupported(c, "fmi2GetBooleanStatus for this status kind");
}

fmi2Status fmi2GetStringStatus(fmi2Component c, const fmi2StatusKind s, fmi2String *value) {
    (void)s;
    (void)value;
    return unsupported(c, "fmi2GetStringStatus");
}
