"""The local world: the moto stack (S3, Kinesis), the Datadog intake, the traffic simulator and
the demo. Nothing outside ``sandbox/`` and the command line imports it."""
