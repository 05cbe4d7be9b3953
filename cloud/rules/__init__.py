"""Pure rule code: geometry parsing and metric helpers; the rules themselves plug in here."""
