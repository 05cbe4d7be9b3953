/* Starts Swagger UI at /docs. Every file comes from the app (Swagger UI from the installed
 * fastapi-offline package, never a CDN) and the page has no inline script, so it works on an
 * intranet without Internet access and under the app's Content-Security-Policy.
 * URLs are relative to the page, so the docs also work behind a proxy that adds a path prefix.
 */
"use strict";

window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", window.location.href).href,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // The default validator is an Internet service: no request leaves for it.
  validatorUrl: null,
});
