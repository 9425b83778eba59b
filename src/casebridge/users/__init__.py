"""The firm's people: fee earners and responsible lawyers."""
