"""The emulator itself: the API as Scarf's spec describes it, and its fault knobs."""
