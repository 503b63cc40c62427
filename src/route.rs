//! STUB (replaced by the rule table implementation)
use crate::config::{ConfigError, RouteConfig};
use crate::event::Event;

pub struct RouteTable {
    routes: Vec<RouteConfig>,
}

impl RouteTable {
    pub fn compile(routes: &[RouteConfig], target_names: &[&str]) -> Result<RouteTable, ConfigError> {
        let _ = target_names;
        Ok(RouteTable { routes: routes.to_vec() })
    }
    pub fn targets_for(&self, endpoint: &str, event: &Event) -> Vec<String> {
        let _ = (endpoint, event);
        let mut out: Vec<String> = Vec::new();
        for r in &self.routes {
            for t in &r.to {
                if !out.contains(t) {
                    out.push(t.clone());
                }
            }
        }
        out
    }
}
