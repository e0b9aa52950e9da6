"""Product categorization: product text, category models, the catalogue's predicted categories, the categorize endpoint."""
