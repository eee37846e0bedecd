"""SQL storage: models, engine/session set-up and migrations runner."""
