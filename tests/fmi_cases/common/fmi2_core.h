/*
 * Minimal FMI 2.0 implementation (Model Exchange and Co-Simulation) shared by the FMI 2.0 test FMUs under
 * tests/fmi_cases (written for validibot's tests).
 *
 * Why: importers resolve every fmi2* function of an interface when they load a binary, while each test
 * model is a few lines. fmi2_core.c implements the full function set once; a model.c describes its
 * variables as rows of `Fmi2Variable` (value reference, type, causality, byte offset into the model's own
 * data struct) and supplies hooks. Value references must be unique across types (the modelDescription.xml
 * files use 0.. for Real, 100.. for Integer/Enumeration, 200.. for Boolean, 300.. for String).
 *
 * `update` runs before every get, so outputs are always a function of the current time, states and
 * parameters. Optional capabilities (FMU state, directional derivatives, input derivatives, asynchronous
 * steps) are declared false in every modelDescription.xml; their functions exist but return fmi2Error.
 */
#ifndef FMI_CASES_FMI2_CORE_H
#define FMI_CASES_FMI2_CORE_H

#include <stddef.h>

#include "fmi2Functions.h"

typedef enum { V_REAL, V_INTEGER, V_BOOLEAN, V_STRING } Fmi2VarType;
typedef enum { C_PARAMETER, C_INPUT, C_OUTPUT, C_LOCAL } Fmi2Causality;

typedef struct {
    fmi2ValueReference vr;
    Fmi2VarType type;
    Fmi2Causality causality;
    size_t offset; /* offsetof(ModelData, field); a String field is a `const char *` */
} Fmi2Variable;

enum { INTERFACE_ME = 1, INTERFACE_CS = 2 };

typedef enum { MODE_INSTANTIATED, MODE_INITIALIZATION, MODE_RUNNING, MODE_TERMINATED } Fmi2Mode;

typedef struct {
    char *name;
    fmi2CallbackFunctions callbacks;
    fmi2Type interface;
    fmi2Boolean logging_on;
    Fmi2Mode mode;
    fmi2Real time;
    void *data; /* the model's struct */
} Fmi2Instance;

typedef struct {
    int interfaces; /* INTERFACE_* bits this FMU implements */
    const Fmi2Variable *variables;
    size_t n_variables;
    size_t data_size;
    void (*set_start_values)(void *data);
    void (*update)(Fmi2Instance *inst);                           /* outputs and derivatives */
    void (*do_step)(Fmi2Instance *inst, fmi2Real t, fmi2Real h);  /* CS: advance states; may be NULL */
    size_t n_states;                                              /* ME: continuous states (Real) */
    const fmi2ValueReference *state_vrs;
    const fmi2ValueReference *derivative_vrs;
} Fmi2Model;

/* Defined by each model.c. */
extern const Fmi2Model fmi2_model;

void fmi2_log(const Fmi2Instance *inst, fmi2Status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* FMI_CASES_FMI2_CORE_H */
