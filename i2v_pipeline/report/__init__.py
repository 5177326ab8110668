"""Views for reviewers: an HTML gallery of a campaign's videos and a Markdown summary for a
pull request, built from the campaign, the lock and the plan (this layer reads, never runs)."""
