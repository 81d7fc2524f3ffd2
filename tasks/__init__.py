"""The task format, the built-in suite, importers and the grading contract."""
