"""The sync: input read, records mapped into spooled batches, states echoed once their imports are settled."""
