/// <reference types="vitest" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Built into the Python package: spane/api/static (served by spane.api.routes.dashboard).
export default defineConfig({
  plugins: [react()],
  base: "./",
  build: {
    outDir: "../spane/api/static",
    emptyOutDir: true,
    assetsDir: "assets",
    chunkSizeWarningLimit: 600,
    sourcemap: false,
  },
  server: {
    proxy: {
      "/v1": { target: "http://127.0.0.1:8080", ws: true },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
