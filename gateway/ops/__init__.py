"""What operators watch: health and Prometheus metrics."""
