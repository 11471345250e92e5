"""Development and tests: the local Kafka, the provider simulators, generated changes, the demo and its verdict."""
