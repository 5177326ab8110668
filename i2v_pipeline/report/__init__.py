"""Views for reviewers: an HTML gallery of a campaign's videos and a Markdown summary for a pull
request, both built from the campaign, the lock and the plan (the report layer reads, never runs)."""
