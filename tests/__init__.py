"""poserepro test suite."""
