"""Landing files into bronze tables: readers, validators and the ingest step."""
