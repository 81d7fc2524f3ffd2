"""One grader per task kind, dispatched by ``tasks.grade.GRADERS``."""
