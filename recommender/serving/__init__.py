"""Serving the model in every process: the live version, people's vectors, new papers' vectors
and the search index, each kept in step with Redis (see `recommender.service`)."""
