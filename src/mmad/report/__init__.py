"""Numbers to tables, figures, pages and the leaderboard."""
