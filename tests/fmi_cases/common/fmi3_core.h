/*
 * Minimal FMI 3.0 implementation shared by the test FMUs under tests/fmi_cases (written for validibot's tests).
 *
 * Why: importers such as fmpy resolve every fmi3* function when they load a binary, but each test model is
 * only a few lines. fmi3_core.c implements the whole FMI 3.0 function set once (Model Exchange, Co-Simulation
 * and Scheduled Execution entry points); a model.c only describes its variables and supplies hooks.
 *
 * How a model describes its variables: all values live in one model-defined struct (`data`). Each variable
 * is a row of `Fmi3Variable`: value reference, type, causality, byte offset of its first element in the
 * struct and the number of elements reserved there. An array whose size is a structural parameter names
 * that parameter's value reference in `dim_vr` (the parameter must be a UInt64); its current length is the
 * parameter's value, which may not exceed the reserved element count.
 *
 * Values are computed lazily: `update` is called before every get, so outputs are always a function of the
 * current time, states and parameters. Optional capabilities (FMU state, derivatives, clocks intervals) are
 * declared false in every modelDescription.xml; their functions exist but return fmi3Error.
 */
#ifndef FMI_CASES_FMI3_CORE_H
#define FMI_CASES_FMI3_CORE_H

#include <stddef.h>

#include "fmi3Functions.h"

typedef enum {
    V_FLOAT32, V_FLOAT64, V_INT8, V_UINT8, V_INT16, V_UINT16, V_INT32, V_UINT32, V_INT64, V_UINT64,
    V_BOOLEAN, V_STRING, V_BINARY, V_CLOCK
} Fmi3Type;

typedef enum { C_INDEPENDENT, C_STRUCTURAL_PARAMETER, C_PARAMETER, C_INPUT, C_OUTPUT, C_LOCAL } Fmi3Causality;

/* Storage of one Binary value inside the model's data struct. */
typedef struct {
    const fmi3Byte *data;
    size_t size;
} Fmi3BinaryValue;

#define NO_DIM ((fmi3ValueReference)-1)

typedef struct {
    fmi3ValueReference vr;
    Fmi3Type type;
    Fmi3Causality causality;
    size_t offset;                 /* offsetof(ModelData, field) */
    size_t count;                  /* elements reserved at offset (1 for scalars) */
    fmi3ValueReference dim_vr;     /* NO_DIM, or the UInt64 structural parameter giving the current length */
} Fmi3Variable;

enum { INTERFACE_ME = 1, INTERFACE_CS = 2, INTERFACE_SE = 4 };

typedef enum {
    MODE_INSTANTIATED, MODE_CONFIGURATION, MODE_INITIALIZATION, MODE_EVENT, MODE_CONTINUOUS_TIME,
    MODE_STEP, MODE_CLOCK_ACTIVATION, MODE_TERMINATED
} Fmi3Mode;

typedef struct {
    char *name;
    int interface;                 /* one of INTERFACE_* */
    Fmi3Mode mode;
    fmi3Boolean logging_on;
    fmi3InstanceEnvironment environment;
    fmi3LogMessageCallback logger;
    fmi3Float64 time;
    void *data;                    /* the model's struct */
} Fmi3Instance;

typedef struct {
    int interfaces;                            /* INTERFACE_* bits this FMU implements */
    const Fmi3Variable *variables;
    size_t n_variables;
    size_t data_size;                          /* sizeof(ModelData) */
    void (*set_start_values)(void *data);      /* writes every start value (data is zeroed first) */
    void (*update)(Fmi3Instance *inst);        /* computes outputs/derivatives from time, states, parameters */
    void (*do_step)(Fmi3Instance *inst, fmi3Float64 t, fmi3Float64 h); /* CS: advance states; may be NULL */
    void (*activate)(Fmi3Instance *inst, fmi3ValueReference clock, fmi3Float64 t); /* SE; may be NULL */
    size_t n_states;                           /* ME: scalar Float64 continuous states */
    const fmi3ValueReference *state_vrs;
    const fmi3ValueReference *derivative_vrs;
} Fmi3Model;

/* Defined by each model.c. */
extern const Fmi3Model fmi3_model;

void fmi3_log(const Fmi3Instance *inst, fmi3Status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* FMI_CASES_FMI3_CORE_H */
