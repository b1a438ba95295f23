# Placeholder: install + export rules (filled in by the build-infra work).
