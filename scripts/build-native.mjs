#!/usr/bin/env node
// npm install hook: build the native C++ addon with node-gyp. A failed build never fails the
// install: rl4qe then runs on the reference backend and says why (rl4qe doctor).
console.log(
  '[rl4qe] native addon: not built yet (no native sources); using the reference backend.',
);
