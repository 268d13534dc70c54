"""Pure scheduling logic: the calendar plan, the state machine, messages and feedback."""
