"""Switch drivers: one class per southbound protocol, all implementing base.SwitchDriver."""
