"""The Scarf client against the emulator over real HTTP: answers, retries, bounds."""
