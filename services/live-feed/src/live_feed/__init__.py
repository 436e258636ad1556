"""live-feed: the gateway between the activity notices on Redis pub/sub and
the browsers that watch them (SSE), with the page they watch."""
