/* Tell the server the browser's time zone (the tz cookie), so pages show times in local time. */
(function () {
  "use strict";
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var value = zone && encodeURIComponent(zone);
    if (value && document.cookie.split("; ").indexOf("tz=" + value) < 0) {
      document.cookie = "tz=" + value + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (error) { /* no Intl: the server's zone is used, and the footer says which */ }
})();
