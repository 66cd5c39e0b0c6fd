/*
 * The FMI 3.0 function set, implemented once for the test FMUs under tests/fmi_cases (see fmi3_core.h).
 *
 * Deliberately small: modes are tracked only as far as settability and the ME/CS/SE entry points need, and
 * values are copied between the importer's arrays and the model's data struct using the variable table.
 * Uses no libm function so a source-only FMU built by an importer's generic build links without -lm.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmi3_core.h"

/* ------------------------------------------------------------------------------------------------ helpers */

void fmi3_log(const Fmi3Instance *inst, fmi3Status status, const char *fmt, ...) {
    char message[512];
    va_list args;

    if (inst == NULL || inst->logger == NULL || (status == fmi3OK && !inst->logging_on)) {
        return;
    }
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    inst->logger(inst->environment, status, status == fmi3OK ? "logEvents" : "logStatusError", message);
}

static fmi3Status unsupported(fmi3Instance instance, const char *function) {
    fmi3_log((Fmi3Instance *)instance, fmi3Error, "%s is not supported by this FMU", function);
    return fmi3Error;
}

static const Fmi3Variable *find_variable(fmi3ValueReference vr) {
    for (size_t i = 0; i < fmi3_model.n_variables; ++i) {
        if (fmi3_model.variables[i].vr == vr) {
            return &fmi3_model.variables[i];
        }
    }
    return NULL;
}

static void *address(const Fmi3Instance *inst, const Fmi3Variable *v) { return (char *)inst->data + v->offset; }

/* Current number of elements of v: fixed, or the value of the structural parameter that sizes it. */
static size_t element_count(const Fmi3Instance *inst, const Fmi3Variable *v) {
    const Fmi3Variable *dim;

    if (v->dim_vr == NO_DIM || (dim = find_variable(v->dim_vr)) == NULL) {
        return v->count;
    }
    return (size_t)*(const fmi3UInt64 *)address(inst, dim);
}

static size_t type_size(Fmi3Type type) {
    switch (type) {
    case V_FLOAT32: return sizeof(fmi3Float32);
    case V_FLOAT64: return sizeof(fmi3Float64);
    case V_INT8: return sizeof(fmi3Int8);
    case V_UINT8: return sizeof(fmi3UInt8);
    case V_INT16: return sizeof(fmi3Int16);
    case V_UINT16: return sizeof(fmi3UInt16);
    case V_INT32: return sizeof(fmi3Int32);
    case V_UINT32: return sizeof(fmi3UInt32);
    case V_INT64: return sizeof(fmi3Int64);
    case V_UINT64: return sizeof(fmi3UInt64);
    case V_BOOLEAN: return sizeof(fmi3Boolean);
    case V_STRING: return sizeof(fmi3String);
    case V_BINARY: return sizeof(Fmi3BinaryValue);
    case V_CLOCK: return sizeof(fmi3Clock);
    }
    return 0;
}

static const char *type_name(Fmi3Type type) {
    static const char *names[] = {"Float32", "Float64", "Int8", "UInt8", "Int16", "UInt16", "Int32",
                                  "UInt32", "Int64", "UInt64", "Boolean", "String", "Binary", "Clock"};
    return names[type];
}

/* Looks up vr as a variable of `type`, logging why not. */
static const Fmi3Variable *typed_variable(const Fmi3Instance *inst, fmi3ValueReference vr, Fmi3Type type) {
    const Fmi3Variable *v = find_variable(vr);

    /* Enumerations are declared Int64 in the table: they are read and written with fmi3Get/SetInt64. */
    if (v == NULL || v->type != type) {
        fmi3_log(inst, fmi3Error, "value reference %u is not a %s variable", vr, type_name(type));
        return NULL;
    }
    return v;
}

static fmi3Status get_values(fmi3Instance instance, Fmi3Type type, const fmi3ValueReference vrs[], size_t nvr,
                             void *values, size_t n_values) {
    Fmi3Instance *inst = (Fmi3Instance *)instance;
    const size_t size = type_size(type);
    size_t k = 0;

    if (inst == NULL) {
        return fmi3Error;
    }
    fmi3_model.update(inst);
    for (size_t i = 0; i < nvr; ++i) {
        const Fmi3Variable *v = typed_variable(inst, vrs[i], type);
        size_t n;

        if (v == NULL) {
            return fmi3Error;
        }
        n = element_count(inst, v);
        if (k + n > n_values) {
            fmi3_log(inst, fmi3Error, "nValues = %zu is too small for the requested variables", n_values);
            return fmi3Error;
        }
        memcpy((char *)values + k * size, address(inst, v), n * size);
        k += n;
    }
    if (k != n_values) {
        fmi3_log(inst, fmi3Error, "nValues = %zu but the variables have %zu values", n_values, k);
        return fmi3Error;
    }
    return fmi3OK;
}

/* Parameters (structural or not) are settable until initialization ends; inputs always; nothing else. */
static fmi3Status check_settable(const Fmi3Instance *inst, const Fmi3Variable *v) {
    const int before_init = inst->mode == MODE_INSTANTIATED || inst->mode == MODE_CONFIGURATION ||
                            inst->mode == MODE_INITIALIZATION;

    if (v->causality == C_INPUT || ((v->causality == C_PARAMETER || v->causality == C_STRUCTURAL_PARAMETER) &&
                                    before_init)) {
        return fmi3OK;
    }
    fmi3_log(inst, fmi3Error, "variable with value reference %u cannot be set now", v->vr);
    return fmi3Error;
}

static fmi3Status set_values(fmi3Instance instance, Fmi3Type type, const fmi3ValueReference vrs[], size_t nvr,
                             const void *values, size_t n_values) {
    Fmi3Instance *inst = (Fmi3Instance *)instance;
    const size_t size = type_size(type);
    size_t k = 0;

    if (inst == NULL) {
        return fmi3Error;
    }
    for (size_t i = 0; i < nvr; ++i) {
        const Fmi3Variable *v = typed_variable(inst, vrs[i], type);
        size_t n;

        if (v == NULL || check_settable(inst, v) != fmi3OK) {
            return fmi3Error;
        }
        n = element_count(inst, v);
        if (k + n > n_values) {
            fmi3_log(inst, fmi3Error, "nValues = %zu is too small for the given variables", n_values);
            return fmi3Error;
        }
        if (v->causality == C_STRUCTURAL_PARAMETER && type == V_UINT64) {
            /* a structural parameter sizing an array must fit the storage reserved for that array */
            const fmi3UInt64 length = ((const fmi3UInt64 *)values)[k];

            for (size_t j = 0; j < fmi3_model.n_variables; ++j) {
                if (fmi3_model.variables[j].dim_vr == v->vr && length > fmi3_model.variables[j].count) {
                    fmi3_log(inst, fmi3Error, "structural parameter %u = %llu exceeds the maximum %zu", v->vr,
                             (unsigned long long)length, fmi3_model.variables[j].count);
                    return fmi3Error;
                }
            }
        }
        memcpy(address(inst, v), (const char *)values + k * size, n * size);
        k += n;
    }
    if (k != n_values) {
        fmi3_log(inst, fmi3Error, "nValues = %zu but the variables have %zu values", n_values, k);
        return fmi3Error;
    }
    return fmi3OK;
}

static void reset_data(Fmi3Instance *inst) {
    memset(inst->data, 0, fmi3_model.data_size);
    fmi3_model.set_start_values(inst->data);
    inst->time = 0.0;
    inst->mode = MODE_INSTANTIATED;
}

static fmi3Instance instantiate(int interface, fmi3String instanceName, fmi3String instantiationToken,
                                fmi3Boolean loggingOn, fmi3InstanceEnvironment environment,
                                fmi3LogMessageCallback logMessage) {
    Fmi3Instance probe = {0};
    Fmi3Instance *inst;

    probe.name = (char *)instanceName;
    probe.logging_on = loggingOn;
    probe.environment = environment;
    probe.logger = logMessage;
    if ((fmi3_model.interfaces & interface) == 0) {
        fmi3_log(&probe, fmi3Error, "this FMU does not implement the requested interface type");
        return NULL;
    }
#ifdef FMU_GUID
    if (instantiationToken == NULL || strcmp(instantiationToken, FMU_GUID) != 0) {
        fmi3_log(&probe, fmi3Error, "instantiationToken %s does not match %s",
                 instantiationToken != NULL ? instantiationToken : "(null)", FMU_GUID);
        return NULL;
    }
#else
    (void)instantiationToken;
#endif
    inst = (Fmi3Instance *)calloc(1, sizeof *inst);
    if (inst == NULL) {
        return NULL;
    }
    *inst = probe;
    inst->interface = interface;
    if (instanceName == NULL) {
        instanceName = "";
    }
    inst->name = (char *)malloc(strlen(instanceName) + 1);
    if (inst->name != NULL) {
        strcpy(inst->name, instanceName);
    }
    inst->data = calloc(1, fmi3_model.data_size);
    if (inst->name == NULL || inst->data == NULL) {
        free(inst->name);
        free(inst->data);
        free(inst);
        return NULL;
    }
    reset_data(inst);
    return inst;
}

/* ------------------------------------------------------------------------------------ common functions */

const char *fmi3GetVersion(void) { return fmi3Version; }

fmi3Status fmi3SetDebugLogging(fmi3Instance instance, fmi3Boolean loggingOn, size_t nCategories,
                               const fmi3String categories[]) {
    (void)nCategories;
    (void)categories;
    if (instance == NULL) {
        return fmi3Error;
    }
    ((Fmi3Instance *)instance)->logging_on = loggingOn;
    return fmi3OK;
}

fmi3Instance fmi3InstantiateModelExchange(fmi3String instanceName, fmi3String instantiationToken,
                                          fmi3String resourcePath, fmi3Boolean visible, fmi3Boolean loggingOn,
                                          fmi3InstanceEnvironment instanceEnvironment,
                                          fmi3LogMessageCallback logMessage) {
    (void)resourcePath;
    (void)visible;
    return instantiate(INTERFACE_ME, instanceName, instantiationToken, loggingOn, instanceEnvironment, logMessage);
}

fmi3Instance fmi3InstantiateCoSimulation(fmi3String instanceName, fmi3String instantiationToken,
                                         fmi3String resourcePath, fmi3Boolean visible, fmi3Boolean loggingOn,
                                         fmi3Boolean eventModeUsed, fmi3Boolean earlyReturnAllowed,
                                         const fmi3ValueReference requiredIntermediateVariables[],
                                         size_t nRequiredIntermediateVariables,
                                         fmi3InstanceEnvironment instanceEnvironment,
                                         fmi3LogMessageCallback logMessage,
                                         fmi3IntermediateUpdateCallback intermediateUpdate) {
    (void)resourcePath;
    (void)visible;
    (void)eventModeUsed; /* no events: event mode, if used, has nothing to do */
    (void)earlyReturnAllowed;
    (void)requiredIntermediateVariables;
    (void)nRequiredIntermediateVariables;
    (void)intermediateUpdate;
    return instantiate(INTERFACE_CS, instanceName, instantiationToken, loggingOn, instanceEnvironment, logMessage);
}

fmi3Instance fmi3InstantiateScheduledExecution(fmi3String instanceName, fmi3String instantiationToken,
                                               fmi3String resourcePath, fmi3Boolean visible,
                                               fmi3Boolean loggingOn, fmi3InstanceEnvironment instanceEnvironment,
                                               fmi3LogMessageCallback logMessage,
                                               fmi3ClockUpdateCallback clockUpdate,
                                               fmi3LockPreemptionCallback lockPreemption,
                                               fmi3UnlockPreemptionCallback unlockPreemption) {
    (void)resourcePath;
    (void)visible;
    (void)clockUpdate;
    (void)lockPreemption;
    (void)unlockPreemption;
    return instantiate(INTERFACE_SE, instanceName, instantiationToken, loggingOn, instanceEnvironment, logMessage);
}

void fmi3FreeInstance(fmi3Instance instance) {
    Fmi3Instance *inst = (Fmi3Instance *)instance;

    if (inst != NULL) {
        free(inst->name);
        free(inst->data);
        free(inst);
    }
}

fmi3Status fmi3EnterInitializationMode(fmi3Instance instance, fmi3Boolean toleranceDefined, fmi3Float64 tolerance,
                                       fmi3Float64 startTime, fmi3Boolean stopTimeDefined, fmi3Float64 stopTime) {
    Fmi3Instance *inst = (Fmi3Instance *)instance;

    (void)toleranceDefined;
    (void)tolerance;
    (void)stopTimeDefined;
    (void)stopTime;
    if (inst == NULL) {
        return fmi3Error;
    }
    inst->time = startTime;
    inst->mode = MODE_INITIALIZATION;
    return fmi3OK;
}

fmi3Status fmi3ExitInitializationMode(fmi3Instance instance) {
    Fmi3Instance *inst = (Fmi3Instance *)instance;

    if (inst == NULL) {
        return fmi3Error;
    }
    fmi3_model.update(inst);
    inst->mode = inst->interface == INTERFACE_ME ? MODE_EVENT
                 : inst->interface == INTERFACE_CS ? MODE_STEP
                                                   : MODE_CLOCK_ACTIVATION;
    return fmi3OK;
}

fmi3Status fmi3EnterEventMode(fmi3Instance instance) {
    if (instance == NULL) {
        return fmi3Error;
    }
    ((Fmi3Instance *)instance)->mode = MODE_EVENT;
    return fmi3OK;
}

fmi3Status fmi3Terminate(fmi3Instance instance) {
    if (instance == NULL) {
        return fmi3Error;
    }
    ((Fmi3Instance *)instance)->mode = MODE_TERMINATED;
    return fmi3OK;
}

fmi3Status fmi3Reset(fmi3Instance instance) {
    if (instance == NULL) {
        return fmi3Error;
    }
    reset_data((Fmi3Instance *)instance);
    return fmi3OK;
}

/* ------------------------------------------------------------------------------------- getters, setters */

#define GETTER_SETTER(Name, CType, TAG)                                                                    \
    fmi3Status fmi3Get##Name(fmi3Instance instance, const fmi3ValueReference valueReferences[],             \
                             size_t nValueReferences, CType values[], size_t nValues) {                    \
        return get_values(instance, TAG, valueReferences, nValueReferences, values, nValues);              \
    }                                                                                                      \
    fmi3Status fmi3Set##Name(fmi3Instance instance, const fmi3ValueReference valueReferences[],             \
                             size_t nValueReferences, const CType values[], size_t nValues) {              \
        return set_values(instance, TAG, valueReferences, nValueReferences, values, nValues);              \
    }

GETTER_SETTER(Float32, fmi3Float32, V_FLOAT32)
GETTER_SETTER(Float64, fmi3Float64, V_FLOAT64)
GETTER_SETTER(Int8, fmi3Int8, V_INT8)
GETTER_SETTER(UInt8, fmi3UInt8, V_UINT8)
GETTER_SETTER(Int16, fmi3Int16, V_INT16)
GETTER_SETTER(UInt16, fmi3UInt16, V_UINT16)
GETTER_SETTER(Int32, fmi3Int32, V_INT32)
GETTER_SETTER(UInt32, fmi3UInt32, V_UINT32)
GETTER_SETTER(Int64, fmi3Int64, V_INT64)
GETTER_SETTER(UInt64, fmi3UInt64, V_UINT64)
GETTER_SETTER(Boolean, fmi3Boolean, V_BOOLEAN)

fmi3Status fmi3GetString(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                         size_t nValueReferences, fmi3String values[], size_t nValues) {
    /* the model keeps `const char *` values (string literals or buffers in its data): copy the pointers */
    return get_values(instance, V_STRING, valueReferences, nValueReferences, (void *)values, nValues);
}

fmi3Status fmi3SetString(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                         size_t nValueReferences, const fmi3String values[], size_t nValues) {
    (void)valueReferences;
    (void)nValueReferences;
    (void)values;
    (void)nValues;
    return unsupported(instance, "fmi3SetString (no String inputs or parameters)");
}

fmi3Status fmi3GetBinary(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                         size_t nValueReferences, size_t valueSizes[], fmi3Binary values[], size_t nValues) {
    Fmi3Instance *inst = (Fmi3Instance *)instance;
    size_t k = 0;

    if (inst == NULL) {
        return fmi3Error;
    }
    fmi3_model.update(inst);
    for (size_t i = 0; i < nValueReferences; ++i) {
        const Fmi3Variable *v = typed_variable(inst, valueReferences[i], V_BINARY);
        const Fmi3BinaryValue *stored;
        size_t n;

        if (v == NULL) {
            return fmi3Error;
        }
        stored = (const Fmi3BinaryValue *)address(inst, v);
        n = element_count(inst, v);
        if (k + n > nValues) {
            return fmi3Error;
        }
        for (size_t j = 0; j < n; ++j, ++k) {
            values[k] = stored[j].data;
            valueSizes[k] = stored[j].size;
        }
    }
    return k == nValues ? fmi3OK : fmi3Error;
}

fmi3Status fmi3SetBinary(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                         size_t nValueReferences, const size_t valueSizes[], const fmi3Binary values[],
                         size_t nValues) {
    (void)valueReferences;
    (void)nValueReferences;
    (void)valueSizes;
    (void)values;
    (void)nValues;
    return unsupported(instance, "fmi3SetBinary (no Binary inputs or parameters)");
}

fmi3Status fmi3GetClock(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                        size_t nValueReferences, fmi3Clock values[]) {
    return get_values(instance, V_CLOCK, valueReferences, nValueReferences, values, nValueReferences);
}

fmi3Status fmi3SetClock(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                        size_t nValueReferences, const fmi3Clock values[]) {
    return set_values(instance, V_CLOCK, valueReferences, nValueReferences, values, nValueReferences);
}

/* ------------------------------------------------------------------------- optional, declared unsupported */

fmi3Status fmi3GetNumberOfVariableDependencies(fmi3Instance instance, fmi3ValueReference valueReference,
                                               size_t *nDependencies) {
    (void)valueReference;
    (void)nDependencies;
    return unsupported(instance, "fmi3GetNumberOfVariableDependencies");
}

fmi3Status fmi3GetVariableDependencies(fmi3Instance instance, fmi3ValueReference dependent,
                                       size_t elementIndicesOfDependent[], fmi3ValueReference independents[],
                                       size_t elementIndicesOfIndependents[], fmi3DependencyKind dependencyKinds[],
                                       size_t nDependencies) {
    (void)dependent;
    (void)elementIndicesOfDependent;
    (void)independents;
    (void)elementIndicesOfIndependents;
    (void)dependencyKinds;
    (void)nDependencies;
    return unsupported(instance, "fmi3GetVariableDependencies");
}

fmi3Status fmi3GetFMUState(fmi3Instance instance, fmi3FMUState *FMUState) {
    (void)FMUState;
    return unsupported(instance, "fmi3GetFMUState");
}

fmi3Status fmi3SetFMUState(fmi3Instance instance, fmi3FMUState FMUState) {
    (void)FMUState;
    return unsupported(instance, "fmi3SetFMUState");
}

fmi3Status fmi3FreeFMUState(fmi3Instance instance, fmi3FMUState *FMUState) {
    (void)FMUState;
    return unsupported(instance, "fmi3FreeFMUState");
}

fmi3Status fmi3SerializedFMUStateSize(fmi3Instance instance, fmi3FMUState FMUState, size_t *size) {
    (void)FMUState;
    (void)size;
    return unsupported(instance, "fmi3SerializedFMUStateSize");
}

fmi3Status fmi3SerializeFMUState(fmi3Instance instance, fmi3FMUState FMUState, fmi3Byte serializedState[],
                                 size_t size) {
    (void)FMUState;
    (void)serializedState;
    (void)size;
    return unsupported(instance, "fmi3SerializeFMUState");
}

fmi3Status fmi3DeserializeFMUState(fmi3Instance instance, const fmi3Byte serializedState[], size_t size,
                                   fmi3FMUState *FMUState) {
    (void)serializedState;
    (void)size;
    (void)FMUState;
    return unsupported(instance, "fmi3DeserializeFMUState");
}

fmi3Status fmi3GetDirectionalDerivative(fmi3Instance instance, const fmi3ValueReference unknowns[],
                                        size_t nUnknowns, const fmi3ValueReference knowns[], size_t nKnowns,
                                        const fmi3Float64 seed[], size_t nSeed, fmi3Float64 sensitivity[],
                                        size_t nSensitivity) {
    (void)unknowns;
    (void)nUnknowns;
    (void)knowns;
    (void)nKnowns;
    (void)seed;
    (void)nSeed;
    (void)sensitivity;
    (void)nSensitivity;
    return unsupported(instance, "fmi3GetDirectionalDerivative");
}

fmi3Status fmi3GetAdjointDerivative(fmi3Instance instance, const fmi3ValueReference unknowns[], size_t nUnknowns,
                                    const fmi3ValueReference knowns[], size_t nKnowns, const fmi3Float64 seed[],
                                    size_t nSeed, fmi3Float64 sensitivity[], size_t nSensitivity) {
    (void)unknowns;
    (void)nUnknowns;
    (void)knowns;
    (void)nKnowns;
    (void)seed;
    (void)nSeed;
    (void)sensitivity;
    (void)nSensitivity;
    return unsupported(instance, "fmi3GetAdjointDerivative");
}

fmi3Status fmi3EnterConfigurationMode(fmi3Instance instance) {
    Fmi3Instance *inst = (Fmi3Instance *)instance;

    if (inst == NULL || inst->mode != MODE_INSTANTIATED) {
        return unsupported(instance, "fmi3EnterConfigurationMode outside Instantiated");
    }
    inst->mode = MODE_CONFIGURATION;
    return fmi3OK;
}

fmi3Status fmi3ExitConfigurationMode(fmi3Instance instance) {
    Fmi3Instance *inst = (Fmi3Instance *)instance;

    if (inst == NULL || inst->mode != MODE_CONFIGURATION) {
        return unsupported(instance, "fmi3ExitConfigurationMode outside Configuration Mode");
    }
    inst->mode = MODE_INSTANTIATED;
    return fmi3OK;
}

fmi3Status fmi3GetIntervalDecimal(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                                  size_t nValueReferences, fmi3Float64 intervals[],
                                  fmi3IntervalQualifier qualifiers[]) {
    (void)valueReferences;
    (void)nValueReferences;
    (void)intervals;
    (void)qualifiers;
    return unsupported(instance, "fmi3GetIntervalDecimal");
}

fmi3Status fmi3GetIntervalFraction(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                                   size_t nValueReferences, fmi3UInt64 counters[], fmi3UInt64 resolutions[],
                                   fmi3IntervalQualifier qualifiers[]) {
    (void)valueReferences;
    (void)nValueReferences;
    (void)counters;
    (void)resolutions;
    (void)qualifiers;
    return unsupported(instance, "fmi3GetIntervalFraction");
}

fmi3Status fmi3GetShiftDecimal(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                               size_t nValueReferences, fmi3Float64 shifts[]) {
    (void)valueReferences;
    (void)nValueReferences;
    (void)shifts;
    return unsupported(instance, "fmi3GetShiftDecimal");
}

fmi3Status fmi3GetShiftFraction(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                                size_t nValueReferences, fmi3UInt64 counters[], fmi3UInt64 resolutions[]) {
    (void)valueReferences;
    (void)nValueReferences;
    (void)counters;
    (void)resolutions;
    return unsupported(instance, "fmi3GetShiftFraction");
}

fmi3Status fmi3SetIntervalDecimal(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                                  size_t nValueReferences, const fmi3Float64 intervals[]) {
    (void)valueReferences;
    (void)nValueReferences;
    (void)intervals;
    return unsupported(instance, "fmi3SetIntervalDecimal");
}

fmi3Status fmi3SetIntervalFraction(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                                   size_t nValueReferences, const fmi3UInt64 counters[],
                                   const fmi3UInt64 resolutions[]) {
    (void)valueReferences;
    (void)nValueReferences;
    (void)counters;
    (void)resolutions;
    return unsupported(instance, "fmi3SetIntervalFraction");
}

fmi3Status fmi3SetShiftDecimal(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                               size_t nValueReferences, const fmi3Float64 shifts[]) {
    (void)valueReferences;
    (void)nValueReferences;
    (void)shifts;
    return unsupported(instance, "fmi3SetShiftDecimal");
}

fmi3Status fmi3SetShiftFraction(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                                size_t nValueReferences, const fmi3UInt64 counters[],
                                const fmi3UInt64 resolutions[]) {
    (void)valueReferences;
    (void)nValueReferences;
    (void)counters;
    (void)resolutions;
    return unsupported(instance, "fmi3SetShiftFraction");
}

fmi3Status fmi3EvaluateDiscreteStates(fmi3Instance instance) { return instance != NULL ? fmi3OK : fmi3Error; }

fmi3Status fmi3UpdateDiscreteStates(fmi3Instance instance, fmi3Boolean *discreteStatesNeedUpdate,
                                    fmi3Boolean *terminateSimulation,
                                    fmi3Boolean *nominalsOfContinuousStatesChanged,
                                    fmi3Boolean *valuesOfContinuousStatesChanged,
                                    fmi3Boolean *nextEventTimeDefined, fmi3Float64 *nextEventTime) {
    if (instance == NULL) {
        return fmi3Error;
    }
    /* no discrete states and no time events */
    *discreteStatesNeedUpdate = fmi3False;
    *terminateSimulation = fmi3False;
    *nominalsOfContinuousStatesChanged = fmi3False;
    *valuesOfContinuousStatesChanged = fmi3False;
    *nextEventTimeDefined = fmi3False;
    *nextEventTime = 0.0;
    return fmi3OK;
}

/* ---------------------------------------------------------------------------------------- Model Exchange */

fmi3Status fmi3EnterContinuousTimeMode(fmi3Instance instance) {
    if (instance == NULL) {
        return fmi3Error;
    }
    ((Fmi3Instance *)instance)->mode = MODE_CONTINUOUS_TIME;
    return fmi3OK;
}

fmi3Status fmi3CompletedIntegratorStep(fmi3Instance instance, fmi3Boolean noSetFMUStatePriorToCurrentPoint,
                                       fmi3Boolean *enterEventMode, fmi3Boolean *terminateSimulation) {
    (void)noSetFMUStatePriorToCurrentPoint;
    if (instance == NULL) {
        return fmi3Error;
    }
    *enterEventMode = fmi3False;
    *terminateSimulation = fmi3False;
    return fmi3OK;
}

fmi3Status fmi3SetTime(fmi3Instance instance, fmi3Float64 time) {
    if (instance == NULL) {
        return fmi3Error;
    }
    ((Fmi3Instance *)instance)->time = time;
    return fmi3OK;
}

/* Copies between the states (or derivatives) named by `vrs` and a contiguous array. */
static fmi3Status copy_states(fmi3Instance instance, const fmi3ValueReference *vrs, fmi3Float64 array[], size_t n,
                              int to_array) {
    Fmi3Instance *inst = (Fmi3Instance *)instance;

    if (inst == NULL || n != fmi3_model.n_states) {
        fmi3_log(inst, fmi3Error, "expected %zu continuous states, got %zu", fmi3_model.n_states, n);
        return fmi3Error;
    }
    for (size_t i = 0; i < n; ++i) {
        fmi3Float64 *value = (fmi3Float64 *)address(inst, find_variable(vrs[i]));

        if (to_array) {
            array[i] = *value;
        } else {
            *value = array[i];
        }
    }
    return fmi3OK;
}

fmi3Status fmi3SetContinuousStates(fmi3Instance instance, const fmi3Float64 continuousStates[],
                                   size_t nContinuousStates) {
    return copy_states(instance, fmi3_model.state_vrs, (fmi3Float64 *)continuousStates, nContinuousStates, 0);
}

fmi3Status fmi3GetContinuousStateDerivatives(fmi3Instance instance, fmi3Float64 derivatives[],
                                             size_t nContinuousStates) {
    if (instance == NULL) {
        return fmi3Error;
    }
    fmi3_model.update((Fmi3Instance *)instance);
    return copy_states(instance, fmi3_model.derivative_vrs, derivatives, nContinuousStates, 1);
}

fmi3Status fmi3GetEventIndicators(fmi3Instance instance, fmi3Float64 eventIndicators[], size_t nEventIndicators) {
    (void)eventIndicators;
    return instance != NULL && nEventIndicators == 0 ? fmi3OK : fmi3Error;
}

fmi3Status fmi3GetContinuousStates(fmi3Instance instance, fmi3Float64 continuousStates[],
                                   size_t nContinuousStates) {
    return copy_states(instance, fmi3_model.state_vrs, continuousStates, nContinuousStates, 1);
}

fmi3Status fmi3GetNominalsOfContinuousStates(fmi3Instance instance, fmi3Float64 nominals[],
                                             size_t nContinuousStates) {
    if (instance == NULL || nContinuousStates != fmi3_model.n_states) {
        return fmi3Error;
    }
    for (size_t i = 0; i < nContinuousStates; ++i) {
        nominals[i] = 1.0;
    }
    return fmi3OK;
}

fmi3Status fmi3GetNumberOfEventIndicators(fmi3Instance instance, size_t *nEventIndicators) {
    if (instance == NULL) {
        return fmi3Error;
    }
    *nEventIndicators = 0;
    return fmi3OK;
}

fmi3Status fmi3GetNumberOfContinuousStates(fmi3Instance instance, size_t *nContinuousStates) {
    if (instance == NULL) {
        return fmi3Error;
    }
    *nContinuousStates = fmi3_model.n_states;
    return fmi3OK;
}

/* ----------------------------------------------------------------------------------------- Co-Simulation */

fmi3Status fmi3EnterStepMode(fmi3Instance instance) {
    if (instance == NULL) {
        return fmi3Error;
    }
    ((Fmi3Instance *)instance)->mode = MODE_STEP;
    return fmi3OK;
}

fmi3Status fmi3GetOutputDerivatives(fmi3Instance instance, const fmi3ValueReference valueReferences[],
                                    size_t nValueReferences, const fmi3Int32 orders[], fmi3Float64 values[],
                                    size_t nValues) {
    (void)valueReferences;
    (void)nValueReferences;
    (void)orders;
    (void)values;
    (void)nValues;
    return unsupported(instance, "fmi3GetOutputDerivatives");
}

fmi3Status fmi3DoStep(fmi3Instance instance, fmi3Float64 currentCommunicationPoint,
                      fmi3Float64 communicationStepSize, fmi3Boolean noSetFMUStatePriorToCurrentPoint,
                      fmi3Boolean *eventHandlingNeeded, fmi3Boolean *terminateSimulation, fmi3Boolean *earlyReturn,
                      fmi3Float64 *lastSuccessfulTime) {
    Fmi3Instance *inst = (Fmi3Instance *)instance;

    (void)noSetFMUStatePriorToCurrentPoint;
    if (inst == NULL || inst->interface != INTERFACE_CS) {
        return unsupported(instance, "fmi3DoStep outside Co-Simulation");
    }
    if (communicationStepSize <= 0.0) {
        fmi3_log(inst, fmi3Error, "communicationStepSize must be > 0, got %g", communicationStepSize);
        return fmi3Error;
    }
    if (fmi3_model.do_step != NULL) {
        fmi3_model.do_step(inst, currentCommunicationPoint, communicationStepSize);
    }
    inst->time = currentCommunicationPoint + communicationStepSize;
    *eventHandlingNeeded = fmi3False;
    *terminateSimulation = fmi3False;
    *earlyReturn = fmi3False;
    *lastSuccessfulTime = inst->time;
    return fmi3OK;
}

/* ----------------------------------------------------------------------------------- Scheduled Execution */

fmi3Status fmi3ActivateModelPartition(fmi3Instance instance, fmi3ValueReference clockReference,
                                      fmi3Float64 activationTime) {
    Fmi3Instance *inst = (Fmi3Instance *)instance;

    if (inst == NULL || inst->interface != INTERFACE_SE || fmi3_model.activate == NULL) {
        return unsupported(instance, "fmi3ActivateModelPartition outside Scheduled Execution");
    }
    fmi3_model.activate(inst, clockReference, activationTime);
    inst->time = activationTime;
    return fmi3OK;
}
