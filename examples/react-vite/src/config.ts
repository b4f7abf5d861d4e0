// What precedes /api/upload: `make dev`'s API unless the build names another (VITE_API_BASE_URL).
export const API_BASE: string = import.meta.env.VITE_API_BASE_URL ?? "http://127.0.0.1:8000";
