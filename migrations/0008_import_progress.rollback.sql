drop table import_progress;
