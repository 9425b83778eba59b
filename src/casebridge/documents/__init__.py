"""Documents filed on matters, with versions, trash and content-addressed blobs."""
