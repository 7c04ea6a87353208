"""A single-user MaiBot's ``data/MaiBot.db`` into one agent."""
