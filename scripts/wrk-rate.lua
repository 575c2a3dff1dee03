-- wrk-rate.lua - pace wrk for the demo: each connection waits WRK_DELAY_MS
-- milliseconds before each request, so -c N connections offer about
-- N * 1000 / WRK_DELAY_MS requests per second (wrk itself has no rate option).
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "4")

function delay()
    return delay_ms
end
