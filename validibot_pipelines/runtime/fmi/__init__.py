"""FMI worker: probe (model facts + fmpy validation) and simulation (fmpy in a child process)."""
