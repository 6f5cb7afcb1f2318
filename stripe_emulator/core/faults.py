"""Injected faults (POST /_emulator/faults): taken per request, answered before any state is touched."""


class FaultsMixin:
    def _take_fault(self, path):
        if not self.faults:
            return None
        with self.fault_lock:
            for f in self.faults:
                if f["remaining"] > 0 and (not f.get("path_prefix") or path.startswith(f["path_prefix"])):
                    f["remaining"] -= 1
                    fault = dict(f)
                    self.faults = [x for x in self.faults if x["remaining"] > 0]
                    return fault
        return None

    def _fault_response(self, fault, req_id):
        """The response of an injected fault (None: hang, then drop the connection)."""
        mode = fault["mode"]
        if mode == "hang":
            self.hang_abort.wait(fault.get("seconds") or self.config["hang_seconds"])
            return None
        if mode == "429":
            extra = [("Stripe-Should-Retry", "true")] if fault.get("should_retry") else []
            return self._json(
                429,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "rate_limit",
                        "message": "Too many requests hit the API too quickly. "
                        "We recommend an exponential backoff of your requests.",
                    }
                },
                extra,
                req_id,
            )
        status = int(mode) if str(mode).isdigit() else 500
        extra = []
        if fault.get("should_retry") is not None:
            extra = [("Stripe-Should-Retry", "true" if fault["should_retry"] else "false")]
        if status == 409:
            return self._json(
                409,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "lock_timeout",
                        "message": "This object cannot be accessed right now because another API request or Stripe "
                        "process is currently accessing it (injected fault).",
                    }
                },
                extra,
                req_id,
            )
        return self._json(
            status,
            {
                "error": {
                    "type": "api_error",
                    "message": "An unknown error occurred (injected fault).",
                }
            },
            extra,
            req_id,
        )
