// Drawing a site: Leaflet.draw's polygon tool; the drawn polygon goes into the form as GeoJSON.
(function () {
  "use strict";
  var el = document.getElementById("draw-map");
  if (!el || !window.L) { return; }
  var centre = (el.dataset.center || "19.93,110.33").split(",").map(Number);
  var map = L.map(el, {attributionControl: false}).setView(centre, Number(el.dataset.zoom || 11));
  if (window.multiplanContext) { window.multiplanContext(map, el); }
  var drawn = new L.FeatureGroup().addTo(map);
  map.addControl(new L.Control.Draw({
    draw: {polygon: {allowIntersection: false, showArea: true}, polyline: false, circle: false, marker: false,
           circlemarker: false, rectangle: true},
    edit: {featureGroup: drawn}
  }));
  var text = document.getElementById("site-text");
  function sync() {
    var layers = drawn.getLayers();
    if (layers.length) {
      text.value = JSON.stringify(layers[layers.length - 1].toGeoJSON().geometry);
      document.body.dataset.siteDrawn = "1";
    }
  }
  map.on(L.Draw.Event.CREATED, function (e) { drawn.clearLayers(); drawn.addLayer(e.layer); sync(); });
  map.on(L.Draw.Event.EDITED, sync);
  window.multiplanDrawMap = map;  // for browser tests and for zooming from the console
  el.dataset.ready = "1";
}());
