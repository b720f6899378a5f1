"""Real Mosquitto and victoria-metrics processes for the integration tests.

The station's promises (nothing acknowledged is lost, a device cannot speak for another, the
historian counts a point once) hold or fail in the real servers, not in a mock of them: these
modules start the Debian binaries on free loopback ports in a throwaway folder, wait until they
answer, and stop them by process id.
"""
