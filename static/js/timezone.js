// Fills the hidden time_zone inputs of the signup and login forms with the browser's
// time zone (an IANA name such as "Europe/Berlin"). The server keeps it if it knows the
// name and the user has none yet (accounts/time_zones.py).
(function () {
  "use strict";

  function detectedZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      return "";
    }
  }

  function fill() {
    var zone = detectedZone();
    if (!zone) {
      return;
    }
    var inputs = document.querySelectorAll("input[data-detect-time-zone]");
    for (var i = 0; i < inputs.length; i += 1) {
      if (!inputs[i].value) {
        inputs[i].value = zone;
      }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", fill);
  } else {
    fill();
  }
})();
