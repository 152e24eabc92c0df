"""Built-in MAP oracles for difftools; each module holds one family and registers by name lazily."""
