"""The kernel model: Linux's TCP timers, the settings they run on, and the predictions made from them."""
