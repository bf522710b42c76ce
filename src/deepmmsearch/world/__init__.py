"""The offline world: a seeded synthetic web of entities, pages, pictures and questions."""
